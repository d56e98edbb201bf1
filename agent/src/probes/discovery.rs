//! Finding TLS libraries: in the memory maps of running processes (through /proc/PID/root, so
//! processes in other mount namespaces resolve to their own files) and in the linker cache.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

/// True for OpenSSL's libssl (libssl.so, libssl.so.3, libssl.so.1.1). NSS's libssl3.so has a
/// different API and is not matched.
pub fn is_openssl_libssl(path: &str) -> bool {
    Path::new(path)
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n == "libssl.so" || n.starts_with("libssl.so."))
}

/// Library paths (as the process sees them) in the text of a /proc/PID/maps file.
pub fn libssl_paths_in_maps(maps: &str) -> BTreeSet<String> {
    maps.lines()
        .filter_map(|line| {
            // address perms offset dev inode pathname — the path is the 6th field and may hold spaces.
            let mut fields = line.splitn(6, ' ');
            let path = fields.nth(5)?.trim_start();
            path.starts_with('/').then_some(path)
        })
        .map(|p| p.strip_suffix(" (deleted)").unwrap_or(p))
        .filter(|p| is_openssl_libssl(p))
        .map(str::to_owned)
        .collect()
}

/// The libssl files mapped by `pid`, as paths the agent can open.
pub fn libssl_of_process(pid: u32) -> Vec<PathBuf> {
    let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else {
        return Vec::new();
    };
    libssl_paths_in_maps(&maps)
        .into_iter()
        .map(|p| PathBuf::from(format!("/proc/{pid}/root{p}")))
        .collect()
}

pub fn all_pids() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// libssl entries of `ldconfig -p`, so that processes started later are covered even when no
/// running process maps the library yet.
pub fn libssl_in_linker_cache() -> Vec<PathBuf> {
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
        .filter(|p| is_openssl_libssl(p))
        .map(PathBuf::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_libssl_in_maps() {
        let maps = "\
7f0000000000-7f0000001000 r--p 00000000 fe:01 123 /usr/lib/x86_64-linux-gnu/libssl.so.3
7f0000001000-7f0000002000 r-xp 00001000 fe:01 123 /usr/lib/x86_64-linux-gnu/libssl.so.3
7f0000003000-7f0000004000 r-xp 00001000 fe:01 124 /usr/lib/libssl3.so
7f0000005000-7f0000006000 r-xp 00001000 fe:01 125 /opt/my app/lib/libssl.so.1.1 (deleted)
7f0000007000-7f0000008000 rw-p 00000000 00:00 0 [heap]
garbage line";
        let found: Vec<_> = libssl_paths_in_maps(maps).into_iter().collect();
        assert_eq!(
            found,
            [
                "/opt/my app/lib/libssl.so.1.1",
                "/usr/lib/x86_64-linux-gnu/libssl.so.3"
            ]
        );
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
