//! The kprobe socket hooks, proven on a kernel that has kprobes: Debian's stock 6.1 booted under
//! qemu TCG (this host's kernel has none). In one boot the guest runs the same traffic twice —
//! `--socket-hooks tracepoint`, then `--socket-hooks kprobe` — and the test asserts exact fields
//! of both rounds' events, that each round took its addresses from the hooks it claims, and that
//! both rounds describe the traffic identically. A Go TLS server (Go's crypto/tls: entry and
//! return-instruction uprobes, socket from the connection's own fields) answers curl in both
//! rounds too. Root; CI runs it.

use std::collections::BTreeSet;

use cleartap_e2e::{
    TempDir, at, golang, n, privileged,
    qemu::{Initramfs, boot, kernel_image, section},
    s, summary_counter,
};
use serde_json::Value;

const ROUNDS: [&str; 2] = ["tracepoint", "kprobe"];

/// Runs after qemu::GUEST_PRELUDE.
const GUEST_INIT: &str = r#"echo "=== kprobe-pmu ===" >&3
cat /sys/bus/event_source/devices/kprobe/type >&3 2>&1
openssl s_server -quiet -www -accept 8443 -cert /cert.pem -key /key.pem >/dev/null 2>&1 &
[ -x /go-server ] && /go-server 8444 /cert.pem /key.pem >/dev/null 2>&1 &
mkdir -p /www
echo hello-plain > /www/index.html
httpd -p 127.0.0.1:8080 -h /www
for hooks in tracepoint kprobe; do
  RUST_LOG=info /cleartap --socket-hooks $hooks > /ev-$hooks 2> /err-$hooks &
  AG=$!
  i=0
  while ! grep -q "probes live" /err-$hooks; do
    i=$((i+1)); [ $i -gt 900 ] && break; sleep 0.2
  done
  curl -sk -o /dev/null -w "%{local_port}" "https://127.0.0.1:8443/tls?x=1" > /tlsport-$hooks
  curl -s -o /dev/null -w "%{local_port}" "http://127.0.0.1:8080/index.html?y=2" > /plainport-$hooks
  touch /goport-$hooks
  [ -x /go-server ] && curl -sk --http1.1 -o /dev/null -w "%{local_port}" "https://127.0.0.1:8444/hello" > /goport-$hooks
  sleep 2
  kill -INT $AG
  wait $AG
  echo $? > /rc-$hooks
  for f in ev err tlsport plainport goport rc; do
    echo "=== $f-$hooks ===" >&3
    cat /$f-$hooks >&3
    echo >&3
  done
done
echo "=== end ===" >&3
poweroff -f
"#;

fn build_initramfs(dir: &TempDir) -> std::path::PathBuf {
    let fs = Initramfs::with_agent_and_peers(dir, GUEST_INIT);
    // A static Go server (CGO off) from the newest test toolchain, when the toolchains are
    // installed (always under CI).
    if let Some(toolchain) = golang::toolchains().and_then(|t| t.last().cloned()) {
        let server = golang::build(&toolchain, "server", golang::Build::Normal);
        fs.copy(&server.to_string_lossy(), "/go-server");
    }
    let image = dir.path("initramfs.cpio");
    fs.pack(&image);
    image
}

fn events(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad event ({e}): {l}")))
        .collect()
}

fn one<'a>(events: &'a [Value], what: &str, pred: impl Fn(&Value) -> bool) -> &'a Value {
    let found: Vec<&Value> = events.iter().filter(|e| pred(e)).collect();
    assert_eq!(found.len(), 1, "{what}: {found:#?}\nall: {events:#?}");
    found[0]
}

fn endpoint_ports(e: &Value) -> (u64, u64) {
    (
        n(at(e, &["connection", "local", "port"])),
        n(at(e, &["connection", "remote", "port"])),
    )
}

/// What both rounds must agree on: everything but times, ids, fds and ephemeral ports (which
/// are named by the peer's well-known port instead).
fn projection(e: &Value) -> String {
    let (local, remote) = endpoint_ports(e);
    let name = |p: u64| match p {
        8443 | 8444 | 8080 => p.to_string(),
        _ => "ephemeral".into(),
    };
    format!(
        "{} {} tls={} lib={} {}:{} -> {}:{} {} {}?{} {} {} req_headers={}",
        s(at(e, &["process", "comm"])),
        s(at(e, &["connection", "role"])),
        at(e, &["connection", "tls"]),
        at(e, &["connection", "library"]),
        s(at(e, &["connection", "local", "ip"])),
        name(local),
        s(at(e, &["connection", "remote", "ip"])),
        name(remote),
        s(at(e, &["request", "method"])),
        s(at(e, &["request", "path"])),
        s(at(e, &["request", "query"])),
        n(at(e, &["response", "status"])),
        s(at(e, &["response", "version"])),
        at(e, &["request", "headers"]),
    )
}

fn check_round(report: &str, hooks: &str) -> BTreeSet<String> {
    let err = section(report, &format!("err-{hooks}"));
    let err_lines: Vec<String> = err.lines().map(str::to_owned).collect();
    assert_eq!(section(report, &format!("rc-{hooks}")).trim(), "0", "{err}");
    let expected_hooks = match hooks {
        "kprobe" => "socket hooks: 2 kprobes (tcp_sendmsg, tcp_recvmsg)",
        _ => "socket hooks: tracepoints + fd-table walk (as configured)",
    };
    assert!(err.contains(expected_hooks), "{hooks}: {err}");
    let tls_port: u64 = section(report, &format!("tlsport-{hooks}"))
        .trim()
        .parse()
        .expect("curl's TLS local port");
    let plain_port: u64 = section(report, &format!("plainport-{hooks}"))
        .trim()
        .parse()
        .expect("curl's plain local port");
    let all = events(section(report, &format!("ev-{hooks}")));

    let tls_client = one(&all, "curl TLS", |e| {
        s(at(e, &["process", "comm"])) == "curl"
            && at(e, &["connection", "tls"]) == true
            && n(at(e, &["connection", "remote", "port"])) == 8443
    });
    assert_eq!(s(at(tls_client, &["connection", "role"])), "client");
    assert_eq!(endpoint_ports(tls_client), (tls_port, 8443));
    assert_eq!(
        s(at(tls_client, &["connection", "remote", "ip"])),
        "127.0.0.1"
    );
    assert!(at(tls_client, &["connection", "fd"]).is_u64());
    assert!(s(at(tls_client, &["connection", "library"])).contains("libssl.so.3"));
    assert_eq!(s(at(tls_client, &["request", "path"])), "/tls");
    assert_eq!(s(at(tls_client, &["request", "query"])), "x=1");
    assert_eq!(n(at(tls_client, &["response", "status"])), 200);

    let tls_server = one(&all, "s_server", |e| {
        s(at(e, &["process", "comm"])) == "openssl"
    });
    assert_eq!(s(at(tls_server, &["connection", "role"])), "server");
    assert_eq!(endpoint_ports(tls_server), (8443, tls_port));
    assert_eq!(s(at(tls_server, &["request", "path"])), "/tls");

    let plain_client = one(&all, "curl plain", |e| {
        s(at(e, &["process", "comm"])) == "curl" && at(e, &["connection", "tls"]) == false
    });
    assert_eq!(s(at(plain_client, &["connection", "role"])), "client");
    assert_eq!(endpoint_ports(plain_client), (plain_port, 8080));
    assert!(at(plain_client, &["connection", "library"]).is_null());
    assert_eq!(s(at(plain_client, &["request", "path"])), "/index.html");
    assert_eq!(s(at(plain_client, &["request", "query"])), "y=2");
    assert_eq!(n(at(plain_client, &["response", "status"])), 200);
    assert_eq!(n(at(plain_client, &["response", "body_size"])), 12);
    assert_eq!(n(at(plain_client, &["response", "body_missing_bytes"])), 0);

    let plain_server = one(&all, "busybox httpd", |e| {
        s(at(e, &["process", "comm"])) == "httpd"
    });
    assert_eq!(s(at(plain_server, &["connection", "role"])), "server");
    assert_eq!(endpoint_ports(plain_server), (8080, plain_port));
    assert_eq!(
        at(plain_server, &["connection", "tls"]),
        &Value::Bool(false)
    );
    // busybox httpd forks per connection (the child inherits the socket: found through the fd
    // table, role learned from the traffic), reads fd 0, writes fd 1 (one socket, one stream)
    // and sends the file with sendfile (sized, all of it marked missing).
    assert_eq!(s(at(plain_server, &["request", "path"])), "/index.html");
    assert_eq!(n(at(plain_server, &["response", "status"])), 200);
    assert_eq!(n(at(plain_server, &["response", "body_size"])), 12);
    assert_eq!(n(at(plain_server, &["response", "body_missing_bytes"])), 12);

    let from_kprobe = summary_counter(&err_lines, "addresses_from_kprobe");
    let from_fd_table = summary_counter(&err_lines, "addresses_from_fd_table");
    // Go's sockets come from the connection's fields and the fd-table walk, with either hooks.
    let go_streams = u64::from(
        !section(report, &format!("goport-{hooks}"))
            .trim()
            .is_empty(),
    );
    if hooks == "kprobe" {
        assert!(from_kprobe >= 4, "{err}");
        assert_eq!(from_fd_table, go_streams, "{err}");
    } else {
        assert_eq!(from_kprobe, 0, "{err}");
        assert!(from_fd_table >= 4, "{err}");
    }
    assert_eq!(summary_counter(&err_lines, "ringbuf_full_records"), 0);
    let mut seen: BTreeSet<String> = [tls_client, tls_server, plain_client, plain_server]
        .into_iter()
        .map(projection)
        .collect();
    let go_port = section(report, &format!("goport-{hooks}")).trim();
    if !go_port.is_empty() {
        let go_port: u64 = go_port.parse().expect("curl's local port to the Go server");
        let go_server = one(&all, "Go server", |e| {
            s(at(e, &["process", "comm"])) == "go-server"
        });
        assert_eq!(s(at(go_server, &["connection", "role"])), "server");
        assert_eq!(s(at(go_server, &["connection", "library"])), "/go-server");
        assert!(s(at(go_server, &["connection", "library_version"])).starts_with("go1."));
        assert_eq!(endpoint_ports(go_server), (8444, go_port));
        assert_eq!(s(at(go_server, &["request", "method"])), "GET");
        assert_eq!(s(at(go_server, &["request", "path"])), "/hello");
        assert_eq!(n(at(go_server, &["response", "status"])), 200);
        assert_eq!(n(at(go_server, &["response", "body_size"])), 14);
        assert_eq!(summary_counter(&err_lines, "go_socket_unknown"), 0);
        assert_eq!(summary_counter(&err_lines, "go_returns_unmatched"), 0);
        seen.insert(projection(go_server));
    }
    seen
}

#[test]
fn kprobe_and_tracepoint_hooks_on_debian_6_1_give_the_same_events() {
    if !privileged() {
        return;
    }
    let Some(kernel) = kernel_image() else {
        return;
    };
    let dir = TempDir::new("qemu");
    let image = build_initramfs(&dir);
    let (report, console) = boot(&kernel, &image, &dir, 600);
    assert!(
        report.contains("=== end ==="),
        "the guest did not finish; report:\n{report}\nconsole:\n{console}"
    );
    assert!(section(&report, "kernel").starts_with("6.1."), "{report}");
    assert!(
        section(&report, "kprobe-pmu").trim().parse::<u32>().is_ok(),
        "guest kernel without kprobes: {report}"
    );
    let rounds: Vec<BTreeSet<String>> = ROUNDS.iter().map(|h| check_round(&report, h)).collect();
    assert_eq!(rounds[0], rounds[1], "tracepoint and kprobe rounds differ");
}
