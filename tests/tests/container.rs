//! End-to-end: the container image (built by `cargo xtask image`, named by CLEARTAP_IMAGE) run
//! with podman the way the README says, capturing TLS traffic between processes on the host:
//! once `--privileged`, once with only the documented capabilities. Root; CI runs them.

use std::process::Command;

use cleartap_e2e::{
    Agent, TempDir, WAIT, at, free_port, n,
    peers::{curl, s_server},
    pid_is, run_client, s,
};
use serde_json::Value;

/// The least-privilege set (README, "Capabilities"): uprobes need CAP_SYS_ADMIN on current
/// kernels; CAP_BPF/CAP_PERFMON name the eBPF rights; SYS_PTRACE reads other users' /proc
/// entries; DAC_READ_SEARCH opens their library files.
const CAPABILITIES: &str = "SYS_ADMIN,BPF,PERFMON,SYS_PTRACE,DAC_READ_SEARCH";

fn image() -> Option<String> {
    if let Ok(image) = std::env::var("CLEARTAP_IMAGE") {
        return Some(image);
    }
    let reason = "CLEARTAP_IMAGE is not set (`cargo xtask test` builds the image and sets it)";
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but {reason}");
    }
    eprintln!("SKIPPED: {reason}");
    None
}

/// Removes the container however the test ends.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["rm", "--force", "--time", "0", &self.0])
            .output();
    }
}

fn podman_run(name: &str, image: &str, privilege: &[&str]) -> Command {
    let mut cmd = Command::new("podman");
    cmd.args([
        "run",
        "--rm",
        "--name",
        name,
        "--pull=never",
        "--network=host",
        "--pid=host",
    ])
    .args(privilege)
    .args([
        "-v",
        "/sys/kernel/tracing:/sys/kernel/tracing",
        "-v",
        "/sys/fs/bpf:/sys/fs/bpf",
        "-e",
        "RUST_LOG=info",
        image,
        "--metrics-listen",
        "off",
        "--inventory-file",
        "off",
    ]);
    cmd
}

/// Starts the agent in a container, then a TLS server and a client on the host (both started
/// after the agent: their first exchange must be seen), and checks both sides' events.
fn captures_host_tls(tag: &str, privilege: &[&str]) {
    let Some(image) = image() else {
        return;
    };
    let dir = TempDir::new(tag);
    let name = format!("cleartap-e2e-{tag}-{}", std::process::id());
    let _container = Container(name.clone());
    let agent = Agent::from_command(podman_run(&name, &image, privilege));
    let port = free_port();
    let server = s_server(&dir, port);
    let url = format!("https://127.0.0.1:{port}/container?probe=1");
    let (pid, out) = run_client(&mut curl(&["-w", "%{local_port}", "-o", "/dev/null", &url]));
    let local_port: u64 = out.trim().parse().expect("curl port");
    let client = agent.wait_events(1, WAIT, |e| pid_is(e, pid)).remove(0);
    let served = agent
        .wait_events(1, WAIT, |e| pid_is(e, server.0.id()))
        .remove(0);
    for (event, role, exe, local, remote) in [
        (
            &client,
            "client",
            "/usr/bin/curl",
            local_port,
            u64::from(port),
        ),
        (
            &served,
            "server",
            "/usr/bin/openssl",
            u64::from(port),
            local_port,
        ),
    ] {
        assert_eq!(s(at(event, &["connection", "role"])), role, "{event}");
        assert_eq!(at(event, &["connection", "tls"]), &Value::Bool(true));
        assert_eq!(
            s(at(event, &["connection", "library"])),
            "/usr/lib/x86_64-linux-gnu/libssl.so.3",
            "the host's library, named by its host path: {event}"
        );
        assert_eq!(s(at(event, &["process", "exe"])), exe);
        assert_eq!(n(at(event, &["connection", "local", "port"])), local);
        assert_eq!(n(at(event, &["connection", "remote", "port"])), remote);
        assert_eq!(s(at(event, &["request", "method"])), "GET");
        assert_eq!(s(at(event, &["request", "path"])), "/container");
        assert_eq!(s(at(event, &["request", "query"])), "probe=1");
        assert_eq!(n(at(event, &["response", "status"])), 200);
        assert!(event.get("container").is_none(), "host processes: {event}");
    }
    let lines = agent.stop();
    let summary = lines
        .iter()
        .find(|l| l.contains("exit summary"))
        .expect("summary");
    assert!(summary.contains("ringbuf_full_records=0"), "{summary}");
    assert!(
        !lines.iter().any(|l| l.contains("Permission denied")),
        "{lines:#?}"
    );
}

#[test]
fn privileged_container_captures_host_tls() {
    if !cleartap_e2e::privileged() {
        return;
    }
    captures_host_tls("podman-privileged", &["--privileged"]);
}

#[test]
fn least_privilege_container_captures_host_tls() {
    if !cleartap_e2e::privileged() {
        return;
    }
    captures_host_tls(
        "podman-caps",
        &[
            "--cap-drop=all",
            &format!("--cap-add={CAPABILITIES}"),
            // The default seccomp profile refuses bpf(2) and perf_event_open(2), and the
            // default AppArmor/SELinux labels confine tracefs; the capabilities do the gating.
            "--security-opt=seccomp=unconfined",
            "--security-opt=apparmor=unconfined",
            "--security-opt=label=disable",
        ],
    );
}
