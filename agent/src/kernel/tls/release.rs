//! Releasing libraries nothing uses any more. A uprobe holds its file's inode: after a package
//! upgrade replaced libssl, or once every process of a container with its own copy has exited,
//! the old file would stay pinned (disk space included) for as long as the agent runs. A sweep
//! detaches a library when no running process maps its file and its path no longer names that
//! same file (a system library that merely has no user right now stays attached, ready for the
//! next process). Released slots are reused, so library churn never exhausts the id space.

use std::{collections::HashSet, os::unix::fs::MetadataExt};

use aya::Ebpf;

use super::{Attacher, detach_all, display_path};

impl Attacher {
    /// Detaches libraries that are neither mapped (`mapped`: device, inode of every mapped file)
    /// nor still on disk at their path; returns how many it released.
    pub fn release_unused(&mut self, ebpf: &mut Ebpf, mapped: &HashSet<(u64, u64)>) -> usize {
        let mut released = 0;
        for library in self.libraries.iter_mut().filter(|l| !l.released) {
            if mapped.contains(&library.file) {
                continue;
            }
            let on_disk =
                std::fs::metadata(&library.path).is_ok_and(|m| (m.dev(), m.ino()) == library.file);
            if on_disk {
                continue;
            }
            detach_all(ebpf, library);
            library.released = true;
            self.by_file.remove(&library.file);
            released += 1;
            log::info!(
                "released {}: no process maps it and its path no longer names that file",
                display_path(&library.path)
            );
        }
        self.libraries_released += released as u64;
        released
    }
}
