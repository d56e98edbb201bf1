//! `cargo xtask image`: the container image, built offline with podman. The image is the
//! release binary plus the shared libraries `ldd` lists, on `FROM scratch`: no base image to
//! pull (no registry is reachable here, and none is needed).

use std::{path::Path, process::Command};

use anyhow::{Context as _, bail};

use crate::{apt_install, cargo, output, run_cmd, workspace_root};

pub const DEFAULT_TAG: &str = "localhost/cleartap:dev";

/// podman's settings for these machines: runc (crun is not installed), cgroupfs (no systemd
/// as PID 1), and explicit ulimits (the defaults podman derives fail under this VM's limits).
const CONTAINERS_CONF: &str = "\
# Written by `cargo xtask image` for cleartap's image build and tests.
[containers]
default_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]

[engine]
runtime = \"runc\"
cgroup_manager = \"cgroupfs\"
";

/// Installs podman and runc, writes the drop-in configuration and mounts bpffs.
pub fn setup_podman() -> anyhow::Result<()> {
    apt_install(&["podman", "runc", "binutils"])?;
    let dir = Path::new("/etc/containers/containers.conf.d");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let conf = dir.join("cleartap.conf");
    if std::fs::read_to_string(&conf).ok().as_deref() != Some(CONTAINERS_CONF) {
        std::fs::write(&conf, CONTAINERS_CONF)
            .with_context(|| format!("writing {}", conf.display()))?;
    }
    if !output(Command::new("stat").args(["-f", "-c", "%T", "/sys/fs/bpf"])).contains("bpf") {
        run_cmd(Command::new("mount").args(["-t", "bpf", "bpf", "/sys/fs/bpf"]))?;
    }
    Ok(())
}

/// Builds the release binary and the image; returns the tag.
pub fn build(tag: &str) -> anyhow::Result<String> {
    setup_podman()?;
    run_cmd(cargo().args(["build", "--release", "-p", "agent", "--bin", "cleartap"]))?;
    let root = workspace_root();
    let binary = root.join("target/release/cleartap");
    let context = root.join("target/image");
    let rootfs = context.join("rootfs");
    if context.exists() {
        std::fs::remove_dir_all(&context).context("clearing target/image")?;
    }
    for dir in ["usr/bin", "etc", "tmp", "var/lib/cleartap"] {
        std::fs::create_dir_all(rootfs.join(dir))?;
    }
    // Debug info stays in target/release; the image gets the stripped binary (~15 MB in all).
    run_cmd(
        Command::new("strip")
            .arg("-o")
            .arg(rootfs.join("usr/bin/cleartap"))
            .arg(&binary),
    )?;
    let ldd = output(Command::new("ldd").arg(&binary));
    let libraries: Vec<&str> = ldd
        .lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with('/')))
        .collect();
    if libraries.is_empty() {
        bail!("ldd listed no libraries for {}:\n{ldd}", binary.display());
    }
    for library in libraries {
        let target = rootfs.join(library.trim_start_matches('/'));
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(library, &target).with_context(|| format!("copying {library}"))?;
    }
    // Name lookups (sink hosts, the Kubernetes API) read these; glibc's files/dns are built in.
    std::fs::write(rootfs.join("etc/nsswitch.conf"), "hosts: files dns\n")?;
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/:/usr/bin/cleartap\n",
    )?;
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\n")?;
    std::fs::copy(
        root.join("deploy/container/Containerfile"),
        context.join("Containerfile"),
    )?;
    run_cmd(
        Command::new("podman")
            .args([
                "build",
                "--pull=never",
                "--network=none",
                "--tag",
                tag,
                "--file",
            ])
            .arg(context.join("Containerfile"))
            .arg(&context),
    )?;
    let size =
        output(Command::new("podman").args(["image", "inspect", "--format", "{{.Size}}", tag]));
    eprintln!("xtask: built {tag} ({} bytes)", size.trim());
    Ok(tag.to_owned())
}
