//! End-to-end: `cleartap install` on this host, `systemd-analyze verify` on the installed unit,
//! the installed agent run with exactly the unit's capability bounding set (and with each
//! capability taken away, to show it is needed), then `cleartap uninstall`. Root; CI runs it.

use std::{os::unix::fs::PermissionsExt as _, path::Path, process::Command, time::Duration};

use cleartap_e2e::{
    Agent, Peer, TempDir, WAIT, agent_binary, at, free_port, make_cert, peers::curl, pid_is,
    privileged, run_client, s, wait_for_port,
};

const UNIT: &str = "/etc/systemd/system/cleartap.service";
const NOBODY: &str = "65534";

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed: {text}");
    text
}

/// `CapabilityBoundingSet=` of the installed unit as a setpriv list: "+sys_admin,+…".
fn unit_capabilities() -> Vec<String> {
    let unit = std::fs::read_to_string(UNIT).expect("installed unit");
    unit.lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("a CapabilityBoundingSet line")
        .split_whitespace()
        .map(|c| c.trim_start_matches("CAP_").to_lowercase())
        .collect()
}

/// The installed agent, as the unit starts it, limited to `caps`.
fn installed_agent(caps: &[String]) -> Agent {
    let bounding: String = std::iter::once("-all".to_owned())
        .chain(caps.iter().map(|c| format!("+{c}")))
        .collect::<Vec<_>>()
        .join(",");
    let mut cmd = Command::new("setpriv");
    cmd.args(["--bounding-set", &bounding, "--inh-caps", "-all", "--"])
        .args([
            "/usr/local/bin/cleartap",
            "--config",
            "/etc/cleartap/cleartap.toml",
        ])
        .args(["--metrics-listen", "off", "--inventory-file", "off"])
        .env("RUST_LOG", "info");
    Agent::from_command(cmd)
}

/// openssl s_server as nobody, with its own libssl in a directory only nobody may enter: the
/// agent needs SYS_PTRACE to read its maps and DAC_READ_SEARCH to open that library.
fn private_server(dir: &TempDir, port: u16) -> Peer {
    let (cert, key) = make_cert(dir);
    for f in [&cert, &key] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    let private = dir.path("private");
    std::fs::create_dir(&private).expect("private dir");
    std::fs::copy(
        "/usr/lib/x86_64-linux-gnu/libssl.so.3",
        private.join("libssl.so.3"),
    )
    .expect("copy libssl");
    run(Command::new("chown").args(["-R", NOBODY]).arg(&private));
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let child = Command::new("setpriv")
        .args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups", "--"])
        .arg("env")
        .arg(format!("LD_LIBRARY_PATH={}", private.display()))
        .args([
            "openssl",
            "s_server",
            "-quiet",
            "-www",
            "-accept",
            &port.to_string(),
        ])
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start s_server as nobody");
    wait_for_port(port, "s_server as nobody");
    Peer(child, "s_server (nobody, private libssl)")
}

/// Whether the agent, limited to `caps`, sees the private server's side of one exchange.
fn sees_private_server(caps: &[String], server: &Peer, port: u16, library: &Path) -> bool {
    let agent = installed_agent(caps);
    let url = format!("https://127.0.0.1:{port}/caps");
    let (client_pid, _) = run_client(&mut curl(&["-o", "/dev/null", &url]));
    // The client uses the system libssl: seen whenever uprobes work at all.
    let server_pid = server.0.id();
    let seen = if caps.iter().any(|c| c == "sys_admin") {
        let client = agent
            .wait_events(1, WAIT, |e| pid_is(e, client_pid))
            .remove(0);
        assert_eq!(s(at(&client, &["request", "path"])), "/caps");
        std::thread::sleep(Duration::from_secs(2));
        let served: Vec<_> = agent
            .events()
            .into_iter()
            .filter(|e| pid_is(e, server_pid))
            .collect();
        if let Some(e) = served.first() {
            assert_eq!(
                s(at(e, &["connection", "library"])),
                library.to_string_lossy()
            );
            assert_eq!(s(at(e, &["connection", "role"])), "server");
        }
        !served.is_empty()
    } else {
        std::thread::sleep(Duration::from_secs(3));
        assert!(agent.events().is_empty(), "no uprobes, no TLS events");
        false
    };
    agent.stop();
    seen
}

#[test]
fn install_verify_run_with_the_unit_capabilities_and_uninstall() {
    if !privileged() {
        return;
    }
    let installed = run(Command::new(agent_binary()).arg("install"));
    assert!(
        installed.contains("binary: /usr/local/bin/cleartap"),
        "{installed}"
    );
    assert!(installed.contains("unit: /etc/systemd/system/cleartap.service"));
    run(Command::new("systemd-analyze").args(["verify", UNIT]));

    let caps = unit_capabilities();
    assert_eq!(caps, ["sys_admin", "sys_ptrace", "dac_read_search"]);
    let dir = TempDir::new("install-caps");
    let port = free_port();
    let server = private_server(&dir, port);
    let library = dir.path("private").join("libssl.so.3");
    assert!(
        sees_private_server(&caps, &server, port, &library),
        "with the unit's capabilities the private server must be seen"
    );
    // Each one is needed: without it the private server (or all TLS) goes unseen.
    for missing in ["sys_ptrace", "dac_read_search"] {
        let fewer: Vec<String> = caps.iter().filter(|c| *c != missing).cloned().collect();
        assert!(
            !sees_private_server(&fewer, &server, port, &library),
            "without {missing} the private library cannot be reached"
        );
    }
    let no_admin = ["bpf", "perfmon", "sys_ptrace", "dac_read_search"].map(String::from);
    assert!(!sees_private_server(&no_admin, &server, port, &library));
    drop(server);

    let removed = run(Command::new("/usr/local/bin/cleartap").arg("uninstall"));
    assert!(
        removed.contains("removed /etc/systemd/system/cleartap.service"),
        "{removed}"
    );
    for path in [
        UNIT,
        "/usr/local/bin/cleartap",
        "/etc/cleartap",
        "/var/lib/cleartap",
    ] {
        assert!(!Path::new(path).exists(), "{path} left behind");
    }
}
