//! Finding TLS code: every executable mapping of running processes (through /proc/PID/root, so
//! processes in other mount namespaces resolve to their own files) is a candidate — shared
//! libraries and executables that link OpenSSL in statically alike; the attacher looks at each
//! file once and keeps those that define a TLS stack's functions. The linker cache adds the
//! system TLS libraries so processes started later are covered from their first call.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

/// True for OpenSSL's libssl (libssl.so, libssl.so.3, libssl.so.1.1) and GnuTLS's
/// libgnutls.so.30. NSS's libssl3.so has a different API and is not matched.
pub fn is_tls_library_name(path: &str) -> bool {
    Path::new(path)
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| {
            n == "libssl.so"
                || n.starts_with("libssl.so.")
                || n == "libgnutls.so"
                || n.starts_with("libgnutls.so.")
        })
}

/// Paths (as the process sees them) of the files a /proc/PID/maps text maps executable.
pub fn executable_paths_in_maps(maps: &str) -> BTreeSet<String> {
    maps.lines()
        .filter_map(|line| {
            // address perms offset dev inode pathname — the path is the 6th field and may hold spaces.
            let mut fields = line.splitn(6, ' ');
            let perms = fields.nth(1)?;
            let path = fields.nth(3)?.trim_start();
            // memfd mappings ("/memfd:name (deleted)") have no file to attach to.
            (perms.contains('x') && path.starts_with('/') && !path.starts_with("/memfd:"))
                .then_some(path)
        })
        .map(|p| p.strip_suffix(" (deleted)").unwrap_or(p))
        .map(str::to_owned)
        .collect()
}

/// Files `pid` maps executable, as paths the agent can open. A process in the agent's mount
/// namespace gets plain paths, which stay valid after it exits (a short-lived process is often
/// gone by the time its files are attached); others go through /proc/PID/root — the same root
/// directory is not enough, a private mount namespace can bind other files over its paths.
pub fn candidates_of_process(pid: u32) -> Vec<PathBuf> {
    let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else {
        return Vec::new();
    };
    let same_root = same_mount_namespace(pid);
    executable_paths_in_maps(&maps)
        .into_iter()
        .map(|p| {
            if same_root {
                PathBuf::from(p)
            } else {
                PathBuf::from(format!("/proc/{pid}/root{p}"))
            }
        })
        .collect()
}

fn same_mount_namespace(pid: u32) -> bool {
    match (
        std::fs::read_link(format!("/proc/{pid}/ns/mnt")),
        std::fs::read_link("/proc/self/ns/mnt"),
    ) {
        (Ok(theirs), Ok(ours)) => theirs == ours,
        _ => false,
    }
}

/// (device, inode) of every file some running process maps, as stat(2) reports them: the maps
/// `dev` field is "major:minor" in hex.
pub fn mapped_files() -> std::collections::HashSet<(u64, u64)> {
    let mut files = std::collections::HashSet::new();
    for pid in all_pids() {
        if let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) {
            files.extend(files_in_maps(&maps));
        }
    }
    files
}

pub fn files_in_maps(maps: &str) -> impl Iterator<Item = (u64, u64)> + '_ {
    maps.lines().filter_map(|line| {
        let mut fields = line.split_ascii_whitespace();
        let dev = fields.nth(3)?;
        let inode: u64 = fields.next()?.parse().ok()?;
        let (major, minor) = dev.split_once(':')?;
        let major = u32::from_str_radix(major, 16).ok()?;
        let minor = u32::from_str_radix(minor, 16).ok()?;
        (inode != 0).then(|| (libc::makedev(major, minor), inode))
    })
}

pub fn all_pids() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// Where the dynamic linker looks on Debian, Ubuntu, Fedora, Alpine and friends.
const HOST_LIBRARY_DIRS: [&str; 8] = [
    "lib",
    "lib64",
    "usr/lib",
    "usr/lib64",
    "lib/x86_64-linux-gnu",
    "usr/lib/x86_64-linux-gnu",
    "lib/aarch64-linux-gnu",
    "usr/lib/aarch64-linux-gnu",
];

/// The system TLS libraries of the host, so that processes started later are covered from
/// their first call even when no running process maps the library yet. On the host this is
/// the linker cache; in a container that shares the host's PID namespace (a DaemonSet, or
/// `podman run --pid=host`) it is the host's library directories through /proc/1/root — the
/// image has neither the host's libraries nor an ldconfig.
pub fn tls_libraries_for_new_processes() -> Vec<PathBuf> {
    if same_mount_namespace(1) || !Path::new("/proc/1/root/").is_dir() {
        return tls_libraries_in_linker_cache();
    }
    let found = tls_libraries_in_dirs(Path::new("/proc/1/root"));
    log::debug!("host TLS libraries through /proc/1/root: {}", found.len());
    found
}

/// TLS libraries directly in the standard library directories under `root`.
pub fn tls_libraries_in_dirs(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for dir in HOST_LIBRARY_DIRS {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            // Regular files only: the versioned name and its symlinks are the same inode.
            if is_tls_library_name(&path.to_string_lossy())
                && entry.file_type().is_ok_and(|t| t.is_file())
            {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// TLS library entries of `ldconfig -p`.
pub fn tls_libraries_in_linker_cache() -> Vec<PathBuf> {
    let output = match std::process::Command::new("ldconfig").arg("-p").output() {
        Ok(o) if o.status.success() => o.stdout,
        Ok(o) => {
            log::debug!("ldconfig -p exited with {}", o.status);
            return Vec::new();
        }
        Err(e) => {
            log::debug!("ldconfig -p not available: {e}");
            return Vec::new();
        }
    };
    parse_ldconfig(&String::from_utf8_lossy(&output))
}

pub fn parse_ldconfig(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|line| line.split_once("=>").map(|(_, p)| p.trim()))
        .filter(|p| is_tls_library_name(p))
        .map(PathBuf::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executable_mappings_in_maps() {
        let maps = "\
7f0000000000-7f0000001000 r--p 00000000 fe:01 123 /usr/lib/x86_64-linux-gnu/libssl.so.3
7f0000001000-7f0000002000 r-xp 00001000 fe:01 123 /usr/lib/x86_64-linux-gnu/libssl.so.3
7f0000003000-7f0000004000 r-xp 00001000 fe:01 124 /usr/bin/node
7f0000005000-7f0000006000 r-xp 00001000 fe:01 125 /opt/my app/lib/libssl.so.1.1 (deleted)
7f0000007000-7f0000008000 rw-p 00000000 00:00 0 [heap]
7f0000009000-7f000000a000 r-xp 00000000 00:00 0 [vdso]
garbage line";
        let found: Vec<_> = executable_paths_in_maps(maps).into_iter().collect();
        assert_eq!(
            found,
            [
                "/opt/my app/lib/libssl.so.1.1",
                "/usr/bin/node",
                "/usr/lib/x86_64-linux-gnu/libssl.so.3"
            ]
        );
    }

    #[test]
    fn mapped_files_use_stat_device_numbers() {
        let maps = "\
7f0000000000-7f0000001000 r-xp 00000000 fe:01 123 /usr/lib/x86_64-linux-gnu/libssl.so.3
7f0000007000-7f0000008000 rw-p 00000000 00:00 0 [heap]
7f0000009000-7f000000a000 r-xp 00000000 103:05 77 /opt/a b/libssl.so.3 (deleted)
garbage";
        let found: Vec<_> = files_in_maps(maps).collect();
        assert_eq!(
            found,
            [(libc::makedev(0xfe, 1), 123), (libc::makedev(0x103, 5), 77)]
        );
        let meta = std::fs::metadata("/proc/self/exe").expect("own exe");
        let own = std::fs::read_to_string("/proc/self/maps").expect("own maps");
        use std::os::unix::fs::MetadataExt;
        assert!(files_in_maps(&own).any(|f| f == (meta.dev(), meta.ino())));
    }

    #[test]
    fn tls_libraries_found_in_library_directories() {
        let root = std::env::temp_dir().join(format!("cleartap-libdirs-{}", std::process::id()));
        let dir = root.join("usr/lib/x86_64-linux-gnu");
        std::fs::create_dir_all(&dir).expect("dirs");
        std::fs::write(dir.join("libssl.so.3"), b"").expect("file");
        std::fs::write(dir.join("libssl3.so"), b"").expect("file");
        std::os::unix::fs::symlink("libssl.so.3", dir.join("libssl.so")).expect("link");
        std::fs::create_dir_all(root.join("lib64")).expect("dirs");
        std::fs::write(root.join("lib64/libgnutls.so.30"), b"").expect("file");
        assert_eq!(
            tls_libraries_in_dirs(&root),
            [root.join("lib64/libgnutls.so.30"), dir.join("libssl.so.3")]
        );
        std::fs::remove_dir_all(&root).expect("cleanup");
    }

    #[test]
    fn parses_ldconfig_output() {
        let text = "\t1234 libs found in cache `/etc/ld.so.cache'\n\
\tlibssl3.so (libc6,x86-64) => /lib/x86_64-linux-gnu/libssl3.so\n\
\tlibssl.so.3 (libc6,x86-64) => /lib/x86_64-linux-gnu/libssl.so.3\n";
        assert_eq!(
            parse_ldconfig(text),
            [PathBuf::from("/lib/x86_64-linux-gnu/libssl.so.3")]
        );
    }
}
