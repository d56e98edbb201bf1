//! End-to-end coverage beyond the system libssl: OpenSSL linked into an executable (node),
//! GnuTLS (gnutls-cli), a process that loads ssl late, and a process in its own mount namespace
//! and cgroup using a private copy of libssl. Root; CI runs them.

use std::{
    io::Write,
    os::unix::fs::MetadataExt,
    process::{Command, Stdio},
    time::Duration,
};

use cleartap_e2e::{
    Agent, TempDir, WAIT, at, free_port, n,
    peers::{NGINX_FILE_BYTES, PYTHON, nginx, peers_dir},
    pid_is, privileged, run_client, s,
};

#[test]
fn node_with_statically_linked_openssl() {
    if !privileged() {
        return;
    }
    let dir = TempDir::new("node");
    let port = free_port();
    let _server = nginx(&dir, port);
    let agent = Agent::start(&[]);
    let mut cmd = Command::new("node");
    cmd.arg(peers_dir().join("node_https_get.js"))
        .arg(port.to_string())
        .arg("/file.bin?from=node")
        .arg("1500");
    let (pid, out) = run_client(&mut cmd);
    assert_eq!(out.trim(), format!("200 {NGINX_FILE_BYTES}"));
    let e = agent.wait_events(1, WAIT, |e| pid_is(e, pid)).remove(0);
    let node = std::fs::canonicalize("/usr/bin/node").expect("node");
    assert_eq!(s(at(&e, &["process", "exe"])), node.to_string_lossy());
    assert_eq!(
        s(at(&e, &["connection", "library"])),
        node.to_string_lossy()
    );
    assert_eq!(s(at(&e, &["request", "method"])), "GET");
    assert_eq!(s(at(&e, &["request", "path"])), "/file.bin");
    assert_eq!(s(at(&e, &["request", "query"])), "from=node");
    assert_eq!(s(at(&e, &["request", "headers", "x-from"])), "node-e2e");
    assert_eq!(n(at(&e, &["response", "status"])), 200);
    assert_eq!(
        n(at(&e, &["response", "body_size"])),
        NGINX_FILE_BYTES as u64
    );
    assert_eq!(s(at(&e, &["connection", "role"])), "client");
    // node's TLS runs on memory BIOs: no socket I/O inside SSL calls, so no fd and no addresses.
    // The event says so instead of guessing.
    assert!(at(&e, &["connection", "fd"]).is_null());
    assert!(at(&e, &["connection", "remote"]).is_null());
    agent.stop();
}

#[test]
fn gnutls_cli_client() {
    if !privileged() {
        return;
    }
    let dir = TempDir::new("gnutls");
    let port = free_port();
    let _server = nginx(&dir, port);
    let agent = Agent::start(&[]);
    let mut child = Command::new("gnutls-cli")
        .args(["--insecure", "--port", &port.to_string(), "127.0.0.1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("gnutls-cli (apt: gnutls-bin)");
    let pid = child.id();
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(
            b"GET /file.bin?from=gnutls HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        )
        .expect("request");
    let out = child.wait_with_output().expect("gnutls-cli");
    assert!(String::from_utf8_lossy(&out.stdout).contains("200 OK"));
    let e = agent.wait_events(1, WAIT, |e| pid_is(e, pid)).remove(0);
    assert_eq!(s(at(&e, &["process", "comm"])), "gnutls-cli");
    assert!(s(at(&e, &["connection", "library"])).contains("libgnutls.so"));
    assert_eq!(s(at(&e, &["request", "path"])), "/file.bin");
    assert_eq!(s(at(&e, &["request", "query"])), "from=gnutls");
    assert_eq!(n(at(&e, &["response", "status"])), 200);
    assert_eq!(
        n(at(&e, &["response", "body_size"])),
        NGINX_FILE_BYTES as u64
    );
    assert_eq!(s(at(&e, &["connection", "role"])), "client");
    assert_eq!(
        n(at(&e, &["connection", "remote", "port"])),
        u64::from(port)
    );
    assert_eq!(s(at(&e, &["connection", "local", "ip"])), "127.0.0.1");
    agent.stop();
}

#[test]
fn python_that_imports_ssl_late() {
    if !privileged() {
        return;
    }
    let dir = TempDir::new("lazy");
    let port = free_port();
    let _server = nginx(&dir, port);
    let agent = Agent::start(&[]);
    let mut cmd = Command::new(PYTHON);
    cmd.arg(peers_dir().join("lazy_ssl_client.py"))
        .arg(port.to_string())
        .arg("/file.bin?lazy=1")
        .arg("1.0");
    let (pid, out) = run_client(&mut cmd);
    assert_eq!(out.trim(), format!("200 {NGINX_FILE_BYTES}"));
    let e = agent.wait_events(1, WAIT, |e| pid_is(e, pid)).remove(0);
    assert_eq!(s(at(&e, &["request", "query"])), "lazy=1");
    assert_eq!(n(at(&e, &["response", "status"])), 200);
    agent.stop();
}

/// cgroup v2 directory for a test cgroup: the unified hierarchy of a hybrid setup or the root.
fn cgroup2_root() -> Option<std::path::PathBuf> {
    ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .into_iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.join("cgroup.procs").exists() && p.join("cgroup.subtree_control").exists())
}

struct Cgroup(std::path::PathBuf);

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn container_with_private_libssl_and_own_cgroup() {
    if !privileged() {
        return;
    }
    let root = cgroup2_root().expect("a cgroup v2 hierarchy (unified or root)");
    let cgroup = Cgroup(root.join(format!("cleartap-e2e-{}", std::process::id())));
    std::fs::create_dir_all(&cgroup.0).expect("create cgroup");
    let cgroup_id = std::fs::metadata(&cgroup.0).expect("cgroup dir").ino();

    let dir = TempDir::new("container");
    let port = free_port();
    let _server = nginx(&dir, port);
    let system_lib =
        std::fs::canonicalize("/lib/x86_64-linux-gnu/libssl.so.3").expect("system libssl");
    let private = dir.path("libssl.so.3");
    std::fs::copy(&system_lib, &private).expect("copy libssl");
    let agent = Agent::start(&[]);
    // Own cgroup, own mount namespace, and the private copy (another inode) bind-mounted over
    // the system path: only found through /proc/PID/root, and only captured if attached.
    let script = format!(
        "echo $$ > {procs} && exec unshare --mount --propagation private sh -c \
         'mount --bind {private} {system} && exec {python} {client} {port} /file.bin?in=container 1.0'",
        procs = cgroup.0.join("cgroup.procs").display(),
        private = private.display(),
        system = system_lib.display(),
        python = PYTHON,
        client = peers_dir().join("delayed_https_client.py").display(),
    );
    let (pid, out) = run_client(Command::new("sh").arg("-c").arg(&script));
    assert_eq!(out.trim(), format!("200 {NGINX_FILE_BYTES}"));
    let e = agent.wait_events(1, WAIT, |e| pid_is(e, pid)).remove(0);
    assert_eq!(s(at(&e, &["request", "query"])), "in=container");
    assert_eq!(n(at(&e, &["process", "cgroup_id"])), cgroup_id);
    assert_eq!(
        s(at(&e, &["connection", "library"])),
        system_lib.to_string_lossy()
    );
    let attach_line = format!("(mapped by pid {pid})");
    assert!(
        agent
            .stderr_lines()
            .iter()
            .any(|l| l.contains("attached to") && l.contains(&attach_line)),
        "the private copy was not attached through the process's root: {:#?}",
        agent.stderr_lines()
    );
    agent.stop();
}

/// Kernel-side filters: a task name excluded, and only one server port included. Everything
/// else the processes do over TLS must stay invisible, and the skipped calls counted.
#[test]
fn filters_by_comm_and_port() {
    if !privileged() {
        return;
    }
    let dir = TempDir::new("filters");
    let (kept, dropped) = (free_port(), free_port());
    let nginx_server = nginx(&dir, kept);
    let py_server = cleartap_e2e::peers::python_server(&dir, dropped);
    let agent = Agent::start(&["--exclude-comm", "curl", "--port", &kept.to_string()]);
    let (curl_pid, _) = run_client(&mut cleartap_e2e::peers::curl(&[
        "-o",
        "/dev/null",
        &format!("https://127.0.0.1:{kept}/file.bin?who=curl"),
    ]));
    let python = |port: u16, query: &str| {
        let mut cmd = Command::new(PYTHON);
        cmd.arg(peers_dir().join("https_client.py"))
            .arg(port.to_string())
            .arg(format!("/file.bin?who={query}"));
        run_client(&mut cmd).0
    };
    let py_kept = python(kept, "python-kept");
    let py_dropped = python(dropped, "python-dropped");
    // nginx answered both requests on the kept port; python's request there is captured.
    agent.wait_events(2, WAIT, |e| pid_is(e, nginx_server.0.id()));
    agent.wait_events(1, WAIT, |e| pid_is(e, py_kept));
    // Anything that should not be there has had time to arrive.
    std::thread::sleep(Duration::from_secs(1));
    let events = agent.events();
    let queries: Vec<(u64, &str)> = events
        .iter()
        .map(|e| {
            (
                n(at(e, &["process", "pid"])),
                s(at(e, &["request", "query"])),
            )
        })
        .collect();
    assert!(
        !events.iter().any(|e| pid_is(e, curl_pid)),
        "curl was excluded: {queries:?}"
    );
    assert!(
        !events.iter().any(|e| pid_is(e, py_dropped)),
        "port {dropped} was not included: {queries:?}"
    );
    assert!(
        !events.iter().any(|e| pid_is(e, py_server.0.id())),
        "{queries:?}"
    );
    let nginx_seen: Vec<&str> = events
        .iter()
        .filter(|e| pid_is(e, nginx_server.0.id()))
        .map(|e| s(at(e, &["request", "query"])))
        .collect();
    assert_eq!(nginx_seen, ["who=curl", "who=python-kept"]);
    let lines = agent.stop();
    let summary = lines
        .iter()
        .find(|l| l.contains("exit summary"))
        .expect("summary");
    let filtered: u64 = summary
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("filtered_calls="))
        .and_then(|v| v.parse().ok())
        .expect("filtered_calls in the summary");
    assert!(filtered > 0, "{summary}");
}
