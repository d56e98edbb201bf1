//! Boots another kernel (Debian's stock 6.1, which has kprobes) under qemu TCG with an initramfs
//! holding busybox, the cleartap binary, curl, openssl and their shared libraries, runs a guest
//! script, and returns what the script wrote to the second serial port.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use crate::TempDir;

/// The kernel image `cargo xtask test` prepared (CLEARTAP_QEMU_KERNEL). Under CI=true its
/// absence fails the test; elsewhere the test is skipped with the reason printed.
pub fn kernel_image() -> Option<PathBuf> {
    let reason = match std::env::var_os("CLEARTAP_QEMU_KERNEL").map(PathBuf::from) {
        Some(p) if p.exists() => return Some(p),
        Some(p) => format!("CLEARTAP_QEMU_KERNEL={} does not exist", p.display()),
        None => "CLEARTAP_QEMU_KERNEL is not set (`cargo xtask test` downloads the kernel)".into(),
    };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but the qemu kernel test cannot run: {reason}");
    }
    eprintln!("SKIPPED: {reason}");
    None
}

/// The start of every guest's /init: busybox, the pseudo file systems the agent needs,
/// loopback, the report on the second serial port (fd 3) and its `kernel` section.
pub const GUEST_PRELUDE: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/usr/bin LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tracefs nodev /sys/kernel/tracing
mount -t bpf bpf /sys/fs/bpf
ip link set lo up
exec 3>/dev/ttyS1
echo "=== kernel ===" >&3
uname -r >&3
"#;

/// Files for the guest's root: (path in guest, path on host).
pub struct Initramfs {
    root: PathBuf,
}

impl Initramfs {
    pub fn new(dir: &TempDir) -> Self {
        let root = dir.path("initramfs");
        for d in ["bin", "proc", "sys", "dev", "tmp", "run", "etc"] {
            std::fs::create_dir_all(root.join(d)).expect("initramfs dir");
        }
        let me = Self { root };
        me.copy("/bin/busybox", "/bin/busybox");
        me
    }

    /// Copies a host file into the guest at `guest` (following symlinks on the host).
    pub fn copy(&self, host: &str, guest: &str) {
        let dest = self.root.join(guest.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        std::fs::copy(host, &dest).unwrap_or_else(|e| panic!("copy {host} into the guest: {e}"));
    }

    pub fn write(&self, guest: &str, contents: &[u8], executable: bool) {
        let dest = self.root.join(guest.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        std::fs::write(&dest, contents).expect("write guest file");
        if executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
    }

    /// Copies an executable and every shared library `ldd` says it needs, at the same paths.
    pub fn copy_with_libraries(&self, host: &str, guest: &str) {
        self.copy(host, guest);
        for lib in shared_libraries(host) {
            let lib = lib.to_string_lossy().into_owned();
            if !self.root.join(lib.trim_start_matches('/')).exists() {
                self.copy(&lib, &lib);
            }
        }
    }

    /// The agent (debug info stripped), curl, openssl with their libraries, a certificate and
    /// key at /cert.pem and /key.pem, and `script` (after GUEST_PRELUDE) as /init.
    pub fn with_agent_and_peers(dir: &TempDir, script: &str) -> Self {
        let fs = Self::new(dir);
        let agent = dir.path("cleartap");
        std::fs::copy(crate::agent_binary(), &agent).expect("copy the agent");
        let strip = Command::new("strip")
            .arg("--strip-debug")
            .arg(&agent)
            .status()
            .expect("strip (apt: binutils)");
        assert!(strip.success());
        fs.copy_with_libraries(&agent.to_string_lossy(), "/cleartap");
        fs.copy_with_libraries("/usr/bin/curl", "/usr/bin/curl");
        fs.copy_with_libraries("/usr/bin/openssl", "/usr/bin/openssl");
        let (cert, key) = crate::make_cert(dir);
        fs.copy(&cert.to_string_lossy(), "/cert.pem");
        fs.copy(&key.to_string_lossy(), "/key.pem");
        fs.write("/init", format!("{GUEST_PRELUDE}{script}").as_bytes(), true);
        fs
    }

    /// Packs the tree as an uncompressed newc cpio archive (the kernel unpacks it as rootfs).
    pub fn pack(&self, out: &Path) {
        let list = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "cd '{}' && find . | cpio --quiet -o -H newc > '{}'",
                self.root.display(),
                out.display()
            ))
            .status()
            .expect("run cpio (apt: cpio)");
        assert!(list.success(), "cpio failed");
    }
}

/// Absolute paths of the shared libraries `binary` loads (ldd's `=> /path` and the loader).
pub fn shared_libraries(binary: &str) -> BTreeSet<PathBuf> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .unwrap_or_else(|e| panic!("ldd {binary}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter_map(|line| {
            let path = match line.split_once("=>") {
                Some((_, right)) => right.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// Boots `kernel` with `initramfs` (its /init runs the test) and returns the guest's report
/// (what it wrote to /dev/ttyS1) and the console log. qemu exits 0 whatever the guest did, so
/// callers judge by the report.
pub fn boot(kernel: &Path, initramfs: &Path, dir: &TempDir, timeout_secs: u64) -> (String, String) {
    let report = dir.path("report.txt");
    let out = Command::new("timeout")
        .arg(timeout_secs.to_string())
        .arg("qemu-system-x86_64")
        .args(["-accel", "tcg,thread=multi", "-cpu", "max", "-m", "2048"])
        .args(["-smp", "2", "-nographic", "-no-reboot", "-nic", "none"])
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initramfs)
        .args(["-append", "console=ttyS0 panic=-1 quiet rdinit=/init"])
        .arg("-serial")
        .arg("mon:stdio")
        .arg("-serial")
        .arg(format!("file:{}", report.display()))
        .stdin(Stdio::null())
        .output()
        .expect("run qemu-system-x86_64 (apt: qemu-system-x86)");
    let console = String::from_utf8_lossy(&out.stdout).into_owned();
    // The guest's tty turns every \n into \r\n.
    let report = std::fs::read_to_string(&report)
        .unwrap_or_default()
        .replace("\r\n", "\n");
    (report, console)
}

/// The text between `=== name ===` and the next `===` marker line of a report.
pub fn section<'a>(report: &'a str, name: &str) -> &'a str {
    let marker = format!("=== {name} ===\n");
    let Some(start) = report.find(&marker).map(|i| i + marker.len()) else {
        return "";
    };
    let rest = &report[start..];
    let end = rest.find("\n=== ").map_or(rest.len(), |i| i + 1);
    &rest[..end]
}
