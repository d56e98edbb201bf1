//! The kernel the kprobe end-to-end test boots under qemu: Debian's stock 6.1 (it has kprobes;
//! the host kernel here does not), fetched with apt and unpacked under target/, never installed.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

use crate::{apt_install, output, run_cmd, workspace_root};

/// What building the guest and booting it needs: the emulator, a static busybox for the guest's
/// userland, cpio to pack the initramfs, strip to shrink the agent inside it.
const QEMU_PACKAGES: [&str; 4] = ["qemu-system-x86", "busybox-static", "cpio", "binutils"];

/// Returns the path of the 6.1 kernel image, downloading it the first time.
pub fn kernel() -> anyhow::Result<PathBuf> {
    apt_install(&QEMU_PACKAGES)?;
    let dir = workspace_root().join("target/qemu-kernel");
    if let Some(image) = find_image(&dir.join("root/boot")) {
        return Ok(image);
    }
    let depends = output(Command::new("apt-cache").args(["depends", "linux-image-amd64"]));
    let Some(package) = depends
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|p| p.starts_with("linux-image-6.1"))
    else {
        bail!(
            "apt's linux-image-amd64 does not depend on a 6.1 kernel (Debian 12 archive expected); got: {depends}"
        );
    };
    let debs = dir.join("deb");
    std::fs::create_dir_all(&debs).with_context(|| format!("creating {}", debs.display()))?;
    run_cmd(
        Command::new("apt-get")
            .args(["download", "-q", package])
            .current_dir(&debs),
    )?;
    let deb = std::fs::read_dir(&debs)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .context("apt-get download left no .deb")?;
    run_cmd(
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(dir.join("root")),
    )?;
    find_image(&dir.join("root/boot")).context("the kernel package holds no boot/vmlinuz-*")
}

fn find_image(boot: &Path) -> Option<PathBuf> {
    std::fs::read_dir(boot)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
}
