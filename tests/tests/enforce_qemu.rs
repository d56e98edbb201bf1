//! Inline enforcement on Debian's stock 6.1 under qemu TCG (the oldest kernel we support, whose
//! verifier is stricter about `bpf_loop` callbacks): the kernel head scan, the client-side
//! verdict, the BPF-LSM gate (Debian's 6.1 has the BPF LSM active and can attach it), the
//! cgroup_skb egress gate (on a cgroup v2 hierarchy the agent mounts itself) and the sock_diag
//! reset (inet_diag and tcp_diag loaded from Debian's modules). openssl s_server
//! -WWW serves /secret (a card number: DATA-1) and /api/items/N (BOLA-1 for token B); B's next
//! GET /secret must not reach the server while A's still does — over TLS, over plain HTTP to
//! busybox httpd (the tail-called plain-HTTP verdict), with the head split over two writes, and
//! with a head longer than one scan window. Root; CI runs it.

use cleartap_e2e::{
    TempDir, privileged,
    qemu::{Initramfs, boot, kernel_image, section},
};
use serde_json::Value;

/// Runs after qemu::GUEST_PRELUDE.
const GUEST_INIT: &str = r#"insmod /inet_diag.ko && insmod /tcp_diag.ko
echo "=== modules ===" >&3
grep -c _diag /proc/modules >&3
mkdir -p /www/api/items
echo '{"name":"a","card":"4111 1111 1111 1111"}' > /www/secret
i=1; while [ $i -le 25 ]; do echo '{"item":1}' > /www/api/items/$i; i=$((i+1)); done
cd /www
openssl s_server -quiet -WWW -accept 8443 -cert /cert.pem -key /key.pem > /www.log 2>&1 &
httpd -f -p 8080 -h /www &
cd /
RUST_LOG=info /cleartap --enforce enforce --inventory-file off --metrics-listen off > /ev 2> /err &
AG=$!
i=0
while ! grep -q "probes live" /err; do i=$((i+1)); [ $i -gt 900 ] && break; sleep 0.2; done
get() { curl -sk --max-time 20 -H "Authorization: Bearer $1" "https://127.0.0.1:8443$2"; }
get tokA /secret > /a1
i=1; while [ $i -le 25 ]; do get tokB /api/items/$i > /dev/null; i=$((i+1)); done
i=0
while ! grep -q '"BOLA-1"' /ev; do i=$((i+1)); [ $i -gt 300 ] && break; sleep 0.2; done
sleep 1
get tokB /secret > /b1
echo $? > /b1rc
get tokA /secret > /a2
verdicts() { grep -c 'enforcement/1' /ev; }
wait_verdicts() {
  i=0
  while [ "$(verdicts)" -lt $1 ]; do i=$((i+1)); [ $i -gt 100 ] && break; sleep 0.2; done
}
wait_verdicts 1
# Plain HTTP: curl's request judged at its send.
curl -s --max-time 20 -H "Host: 127.0.0.1:8443" -H "Authorization: Bearer tokB" http://127.0.0.1:8080/secret > /p1
echo $? > /p1rc
wait_verdicts 2
# A head split over two writes, cut in the token (nc writes what it reads; openssl s_server
# -WWW would answer before the head ends, httpd waits for it).
(printf 'GET /secret HTTP/1.0\r\nHost: 127.0.0.1:8080\r\nAuthorization: Bearer to'; sleep 2; printf 'kB\r\n\r\n'; sleep 3) \
  | nc 127.0.0.1 8080 > /s1 2>/dev/null
wait_verdicts 3
# A head longer than one scan window.
curl -sk --max-time 20 -H "X-Pad: $(head -c 3000 /dev/zero | tr '\0' p)" -H "Authorization: Bearer tokB" https://127.0.0.1:8443/secret > /l1
wait_verdicts 4
kill -INT $AG
wait $AG
echo $? > /rc
for f in a1 b1 b1rc a2 p1 p1rc s1 l1 rc ev err; do
  echo "=== $f ===" >&3
  cat /$f >&3
  echo >&3
done
echo "=== end ===" >&3
poweroff -f
"#;

fn build_initramfs(dir: &TempDir, modules: &std::path::Path) -> std::path::PathBuf {
    let fs = Initramfs::with_agent_and_peers(dir, GUEST_INIT);
    for module in ["inet_diag.ko", "tcp_diag.ko"] {
        let path = modules.join("kernel/net/ipv4").join(module);
        fs.copy(&path.to_string_lossy(), &format!("/{module}"));
    }
    let image = dir.path("initramfs.cpio");
    fs.pack(&image);
    image
}

/// The guest kernel's modules: `<root>/lib/modules/<version>` beside `<root>/boot/<image>`.
fn modules_of(kernel: &std::path::Path) -> std::path::PathBuf {
    let root = kernel
        .parent()
        .and_then(std::path::Path::parent)
        .expect("kernel under <root>/boot");
    let dir = root.join("lib/modules");
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.join("kernel/net/ipv4/inet_diag.ko").exists())
        .unwrap_or_else(|| panic!("no inet_diag.ko under {}", dir.display()))
}

#[test]
fn client_side_verdict_gate_and_reset_on_debian_6_1() {
    if !privileged() {
        return;
    }
    let Some(kernel) = kernel_image() else {
        return;
    };
    let dir = TempDir::new("enforce-qemu");
    let image = build_initramfs(&dir, &modules_of(&kernel));
    let (report, console) = boot(&kernel, &image, &dir, 600);
    assert!(
        report.contains("=== end ==="),
        "the guest did not finish; report:\n{report}\nconsole:\n{console}"
    );
    assert!(section(&report, "kernel").starts_with("6.1."), "{report}");
    let err = section(&report, "err");
    assert_eq!(section(&report, "rc").trim(), "0", "{err}");
    assert!(
        err.contains("enforcement enforce (verdicts at TLS and plain-HTTP client writes and server reads; BPF-LSM socket_sendmsg gate + cgroup_skb egress gate on /run/cleartap/cgroup2 + sock_diag reset"),
        "{err}"
    );
    let secret = r#"{"name":"a","card":"4111 1111 1111 1111"}"#;
    assert_eq!(section(&report, "a1").trim(), secret, "{err}");
    assert_eq!(section(&report, "a2").trim(), secret, "A after the block");
    assert_eq!(
        section(&report, "b1").trim(),
        "",
        "B's request was answered"
    );
    assert_ne!(section(&report, "b1rc").trim(), "0");
    let evidence: Vec<Value> = section(&report, "ev")
        .lines()
        .filter(|l| l.contains("cleartap.enforcement/1"))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad event ({e}): {l}")))
        .collect();
    assert!(!evidence.is_empty(), "{err}");
    let e = &evidence[0];
    assert_eq!(e["action"], "reset", "{e:#}");
    assert_eq!(e["point"], "tls_write_entry");
    assert_eq!(
        e["gates"],
        serde_json::json!(["bpf_lsm", "cgroup_skb_egress"])
    );
    // The BPF-LSM gate refused the blocked request's send itself.
    let lsm_denied: u64 = err
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("lsm_denied="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(lsm_denied >= 1, "{err}");
    assert_eq!(e["process"]["comm"], "curl");
    assert_eq!(e["actor"]["listed_by"][0], "BOLA-1");
    assert_eq!(e["route"]["template"], "/secret");
    assert_eq!(e["route"]["listed_by"][0], "DATA-1");
    assert_eq!(e["connection"]["remote"]["port"], 8443);
    assert_eq!(e["reset"]["done"], true);
    // Plain HTTP, a split head and a long head: stopped at the client too.
    for (answer, what) in [
        ("p1", "plain HTTP"),
        ("s1", "split head"),
        ("l1", "long head"),
    ] {
        assert!(
            !section(&report, answer).contains("4111"),
            "{what} was answered: {report}"
        );
    }
    assert_ne!(section(&report, "p1rc").trim(), "0");
    let points: Vec<&str> = evidence
        .iter()
        .filter_map(|e| e["point"].as_str())
        .collect();
    assert!(points.contains(&"socket_write_entry"), "{points:?}");
    assert!(evidence.len() >= 4, "{points:?} {err}");
    let split: u64 = err
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("heads_split="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(split >= 1, "{err}");
}
