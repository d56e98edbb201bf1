//! What userspace knows of processes: executable paths, learned from exec records and
//! /proc/PID/exe, forgotten at exit. Bounded.

use std::collections::HashMap;

const MAX_PROCESSES: usize = 65_536;

#[derive(Default)]
pub struct ProcessTable {
    exe: HashMap<u32, String>,
    pub evictions: u64,
}

impl ProcessTable {
    pub fn on_exec(&mut self, pid: u32, filename: String) {
        // execve's argument may be relative; /proc/PID/exe is canonical while the process lives.
        let exe = read_exe(pid).unwrap_or(filename);
        self.insert(pid, exe);
    }

    pub fn on_exit(&mut self, pid: u32) {
        self.exe.remove(&pid);
    }

    fn insert(&mut self, pid: u32, exe: String) {
        if self.exe.len() >= MAX_PROCESSES && !self.exe.contains_key(&pid) {
            // Arbitrary victim: the map only caches, /proc is asked again on a miss.
            if let Some(victim) = self.exe.keys().next().copied() {
                self.exe.remove(&victim);
                self.evictions += 1;
            }
        }
        self.exe.insert(pid, exe);
    }

    /// Makes sure `pid`'s exe is cached (reads /proc only on a miss).
    pub fn learn(&mut self, pid: u32) {
        if !self.exe.contains_key(&pid)
            && let Some(exe) = read_exe(pid)
        {
            self.insert(pid, exe);
        }
    }

    /// The exe of `pid`, borrowed from the table (read from /proc on a miss).
    pub fn exe(&mut self, pid: u32) -> Option<&str> {
        if !self.exe.contains_key(&pid) {
            let exe = read_exe(pid)?;
            self.insert(pid, exe);
        }
        self.exe.get(&pid).map(String::as_str)
    }
}

fn read_exe(pid: u32) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_exe_is_resolved_and_exec_name_is_fallback() {
        let mut t = ProcessTable::default();
        let me = std::process::id();
        assert!(t.exe(me).is_some_and(|e| e.starts_with('/')));
        t.on_exec(u32::MAX - 1, "./gone".into());
        assert_eq!(t.exe(u32::MAX - 1), Some("./gone"));
        t.on_exit(u32::MAX - 1);
        assert_eq!(t.exe(u32::MAX - 1), None);
    }
}
