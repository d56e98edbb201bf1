//! End-to-end: events from live capture delivered to real receivers — rsyslog over a unix
//! socket, UDP and TCP; a TLS HTTP receiver speaking Splunk HEC and Elasticsearch _bulk that is
//! down when the traffic happens and comes up later (nothing lost: the spool); and a file sink
//! rotating under load. A canary secret sent in the traffic appears in no sink's output.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use cleartap_e2e::{
    Agent, Peer, TempDir, WAIT, at, free_port,
    peers::{PYTHON, curl, nginx, peers_dir},
    pid_is, privileged, run_client, s, summary_counter,
};
use serde_json::Value;

const CANARY: &str = "sink-canary-5e1f0b";

/// A CA and a leaf for 127.0.0.1 signed by it (rustls wants a SAN and a non-CA leaf).
fn ca_and_leaf(dir: &TempDir) -> (PathBuf, PathBuf, PathBuf) {
    let d = dir.0.display();
    let script = format!(
        "set -e; cd {d}; \
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-ca -keyout ca.key -out ca.pem; \
openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout leaf.key -out leaf.csr; \
printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' > leaf.ext; \
openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile leaf.ext -out leaf.pem"
    );
    let status = Command::new("sh")
        .args(["-c", &script])
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success(), "certificate setup failed");
    (
        dir.path("ca.pem"),
        dir.path("leaf.pem"),
        dir.path("leaf.key"),
    )
}

fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn wait_lines(path: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let lines = lines_of(path);
        if lines.len() >= n || Instant::now() > deadline {
            assert_eq!(lines.len(), n, "{}: {lines:#?}", path.display());
            return lines;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// curl → TLS nginx with the canary in Authorization; returns curl's pid once both the client
/// and the server event are on the agent's stdout.
fn tls_traffic(agent: &Agent, nginx_pid: u32, port: u16, path: &str) -> u32 {
    let auth = format!("Authorization: Bearer {CANARY}");
    let url = format!("https://127.0.0.1:{port}{path}");
    let (pid, _) = run_client(&mut curl(&["-H", &auth, "-o", "/dev/null", &url]));
    agent.wait_events(1, WAIT, |e| pid_is(e, pid));
    agent.wait_events(1, WAIT, |e| {
        pid_is(e, nginx_pid)
            && s(at(e, &["request", "path"])) == path.split('?').next().unwrap_or("")
    });
    pid
}

#[test]
fn syslog_into_rsyslog_over_unix_udp_and_tcp() {
    if !privileged() {
        return;
    }
    let dir = TempDir::new("syslog");
    let (udp, tcp) = (free_port(), free_port());
    let d = dir.0.display();
    let conf = format!(
        "global(workDirectory=\"{d}\" maxMessageSize=\"64k\")\n\
module(load=\"imuxsock\" SysSock.Use=\"off\")\nmodule(load=\"imudp\")\nmodule(load=\"imtcp\")\n\
template(name=\"msgonly\" type=\"string\" string=\"%msg%\\n\")\n\
ruleset(name=\"unix\") {{ action(type=\"omfile\" file=\"{d}/unix.log\" template=\"msgonly\") }}\n\
ruleset(name=\"udp\") {{ action(type=\"omfile\" file=\"{d}/udp.log\" template=\"msgonly\") }}\n\
ruleset(name=\"tcp\") {{ action(type=\"omfile\" file=\"{d}/tcp.log\" template=\"msgonly\") }}\n\
input(type=\"imuxsock\" Socket=\"{d}/log.sock\" Ruleset=\"unix\" UseSpecialParser=\"off\")\n\
input(type=\"imudp\" address=\"127.0.0.1\" port=\"{udp}\" ruleset=\"udp\")\n\
input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{tcp}\" ruleset=\"tcp\")\n"
    );
    std::fs::write(dir.path("rsyslog.conf"), conf).expect("rsyslog.conf");
    let rsyslog = Command::new("rsyslogd")
        .args(["-n", "-f"])
        .arg(dir.path("rsyslog.conf"))
        .arg("-i")
        .arg(dir.path("rsyslog.pid"))
        .spawn()
        .expect("rsyslogd (apt: rsyslog)");
    let _rsyslog = Peer(rsyslog, "rsyslogd");
    cleartap_e2e::wait_for_port(tcp, "rsyslog imtcp");
    let config = format!(
        "[[sinks]]\ntype = \"stdout\"\n\
[[sinks]]\nname = \"local\"\ntype = \"syslog\"\ntransport = \"unix\"\naddress = \"{d}/log.sock\"\nspool_dir = \"{d}/spool-unix\"\n\
[[sinks]]\nname = \"udp\"\ntype = \"syslog\"\ntransport = \"udp\"\naddress = \"127.0.0.1:{udp}\"\nspool_dir = \"{d}/spool-udp\"\n\
[[sinks]]\nname = \"tcp\"\ntype = \"syslog\"\ntransport = \"tcp\"\naddress = \"127.0.0.1:{tcp}\"\nformat = \"ecs\"\nspool_dir = \"{d}/spool-tcp\"\n"
    );
    std::fs::write(dir.path("cleartap.toml"), config).expect("config");
    let port = free_port();
    let server = nginx(&dir, port);
    let config_path = dir.path("cleartap.toml").to_string_lossy().into_owned();
    let agent = Agent::start(&[
        "--config",
        &config_path,
        "--comm",
        "curl",
        "--comm",
        "nginx",
    ]);
    let curl_pid = tls_traffic(&agent, server.0.id(), port, "/file.bin?via=syslog");
    for file in ["unix.log", "udp.log", "tcp.log"] {
        let lines = wait_lines(&dir.path(file), 2);
        let events: Vec<Value> = lines
            .iter()
            .map(|l| serde_json::from_str(l.trim()).unwrap_or_else(|e| panic!("{file}: {e}: {l}")))
            .collect();
        let curl_event = events
            .iter()
            .find(|e| e["process"]["pid"].as_u64() == Some(u64::from(curl_pid)))
            .unwrap_or_else(|| panic!("{file}: no curl event in {events:#?}"));
        if file == "tcp.log" {
            assert_eq!(curl_event["url"]["path"], "/file.bin");
            assert_eq!(curl_event["url"]["query"], "via=syslog");
            assert_eq!(curl_event["http"]["response"]["status_code"], 200);
        } else {
            assert_eq!(curl_event["request"]["path"], "/file.bin");
            assert_eq!(curl_event["response"]["status"], 200);
        }
        assert!(!lines.concat().contains(CANARY), "{file} holds the canary");
    }
    let lines = agent.stop();
    assert!(!lines.concat().contains(CANARY));
    let summary = lines
        .iter()
        .find(|l| l.contains("exit summary"))
        .expect("summary");
    for sink in ["local", "udp", "tcp"] {
        assert!(
            summary.contains(&format!("sink {sink}: delivered=2 ")),
            "{summary}"
        );
    }
}

#[test]
fn hec_and_bulk_over_tls_deliver_everything_after_the_receiver_comes_back() {
    if !privileged() {
        return;
    }
    let dir = TempDir::new("http-sinks");
    let (ca, leaf, leaf_key) = ca_and_leaf(&dir);
    let receiver_port = free_port();
    let token = "hec-token-77";
    std::fs::write(dir.path("hec.auth"), format!("Splunk {token}\n")).expect("auth file");
    let d = dir.0.display();
    let config = format!(
        "[[sinks]]\ntype = \"stdout\"\n\
[[sinks]]\nname = \"hec\"\ntype = \"http\"\nprotocol = \"splunk_hec\"\nformat = \"ocsf\"\n\
url = \"https://127.0.0.1:{receiver_port}/services/collector/event\"\nindex = \"main\"\n\
auth_header_file = \"{d}/hec.auth\"\nca_file = \"{}\"\nbatch_max_ms = 100\nspool_dir = \"{d}/spool-hec\"\n\
[[sinks]]\nname = \"bulk\"\ntype = \"http\"\nprotocol = \"elasticsearch_bulk\"\nformat = \"ecs\"\n\
url = \"https://127.0.0.1:{receiver_port}/_bulk\"\nindex = \"cleartap-test\"\n\
auth_header_env = \"CLEARTAP_TEST_BULK_AUTH\"\nca_file = \"{}\"\nbatch_max_ms = 100\nspool_dir = \"{d}/spool-bulk\"\n",
        ca.display(),
        ca.display()
    );
    std::fs::write(dir.path("cleartap.toml"), config).expect("config");
    let port = free_port();
    let server = nginx(&dir, port);
    let config_path = dir.path("cleartap.toml").to_string_lossy().into_owned();
    let bulk_auth = format!("ApiKey {token}");
    let agent = Agent::start_with_env(
        &[
            "--config",
            &config_path,
            "--comm",
            "curl",
            "--comm",
            "nginx",
        ],
        &[("CLEARTAP_TEST_BULK_AUTH", &bulk_auth)],
    );
    // The receiver is down: the traffic happens anyway.
    const N: usize = 5;
    let mut pids = Vec::new();
    for i in 0..N {
        pids.push(tls_traffic(
            &agent,
            server.0.id(),
            port,
            &format!("/file.bin?n={i}"),
        ));
    }
    std::thread::sleep(Duration::from_secs(1));
    let out = dir.path("received.jsonl");
    let receiver = Command::new(PYTHON)
        .arg(peers_dir().join("siem_receiver.py"))
        .arg(receiver_port.to_string())
        .arg(&out)
        .arg(token)
        .arg(&leaf)
        .arg(&leaf_key)
        .arg("--fail-first")
        .arg("2")
        .spawn()
        .expect("start the receiver");
    let _receiver = Peer(receiver, "siem receiver");
    let lines = wait_lines(&out, 4 * N);
    assert!(
        !lines.concat().contains(CANARY),
        "the receiver got the canary"
    );
    assert!(
        !dir.path("received.jsonl.errors").exists(),
        "{:?}",
        lines_of(&dir.path("received.jsonl.errors"))
    );
    let received: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    for &pid in &pids {
        let hec: Vec<&Value> = received
            .iter()
            .filter(|r| r["protocol"] == "hec" && r["event"]["actor"]["process"]["pid"] == pid)
            .collect();
        assert_eq!(hec.len(), 1, "HEC events of curl {pid}");
        assert_eq!(hec[0]["index"], "main");
        assert_eq!(hec[0]["event"]["class_uid"], 4002);
        assert_eq!(hec[0]["event"]["http_request"]["url"]["path"], "/file.bin");
        assert_eq!(hec[0]["event"]["http_response"]["code"], 200);
        let bulk: Vec<&Value> = received
            .iter()
            .filter(|r| r["protocol"] == "bulk" && r["event"]["process"]["pid"] == pid)
            .collect();
        assert_eq!(bulk.len(), 1, "_bulk events of curl {pid}");
        assert_eq!(bulk[0]["index"], "cleartap-test");
        assert_eq!(bulk[0]["event"]["http"]["request"]["method"], "GET");
        assert_eq!(bulk[0]["event"]["url"]["path"], "/file.bin");
    }
    let stderr = agent.stop();
    assert!(
        !stderr.concat().contains(token),
        "the auth token was logged"
    );
    let summary = stderr
        .iter()
        .find(|l| l.contains("exit summary"))
        .expect("summary");
    for sink in ["hec", "bulk"] {
        assert!(
            summary.contains(&format!("sink {sink}: delivered={} ", 2 * N)),
            "{summary}"
        );
        assert!(
            summary.contains(&format!("sink {sink}: delivered={} queued=0", 2 * N)),
            "{summary}"
        );
    }
    assert!(
        !summary.contains("dropped=1") && summary.contains("dropped=0"),
        "{summary}"
    );
    assert!(summary_counter(&stderr, "events_written") >= (2 * N) as u64);
}

#[test]
fn file_sink_rotates_under_load_without_splitting_lines() {
    if !privileged() {
        return;
    }
    let dir = TempDir::new("file-sink");
    let d = dir.0.display();
    let config = format!(
        "[[sinks]]\ntype = \"stdout\"\n\
[[sinks]]\nname = \"file\"\ntype = \"file\"\npath = \"{d}/out/events.jsonl\"\nmax_bytes = 16384\nkeep_files = 50\n\
spool_dir = \"{d}/spool-file\"\n"
    );
    std::fs::write(dir.path("cleartap.toml"), config).expect("config");
    let port = free_port();
    let server = nginx(&dir, port);
    let config_path = dir.path("cleartap.toml").to_string_lossy().into_owned();
    let agent = Agent::start(&[
        "--config",
        &config_path,
        "--comm",
        "curl",
        "--comm",
        "nginx",
    ]);
    const N: usize = 60;
    let mut args = vec!["-H".to_owned(), format!("Authorization: Bearer {CANARY}")];
    for i in 0..N {
        args.extend([
            "-o".into(),
            "/dev/null".into(),
            format!("https://127.0.0.1:{port}/k/{i}"),
        ]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (pid, _) = run_client(&mut curl(&args));
    agent.wait_events(N, WAIT, |e| pid_is(e, pid));
    let nginx_pid = server.0.id();
    agent.wait_events(N, WAIT, |e| pid_is(e, nginx_pid));
    let stderr = agent.stop();
    let files: Vec<PathBuf> = std::fs::read_dir(dir.path("out"))
        .expect("out dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert!(files.len() >= 3, "expected rotation: {files:?}");
    let (mut exchanges, mut findings) = (0, Vec::new());
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read");
        assert!(!text.contains(CANARY));
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name != "events.jsonl" {
            // Rotation happens once a file passes the limit, between whole lines.
            assert!(text.len() >= 16384, "{name}: {} bytes", text.len());
        }
        for line in text.lines() {
            let event: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{name}: {e}"));
            if event["schema"] == "cleartap.finding/1" {
                findings.push(event);
            } else {
                assert_eq!(event["schema"], "cleartap.http_exchange/1");
                exchanges += 1;
            }
        }
    }
    assert_eq!(exchanges, 2 * N);
    // 60 distinct /k/{id} reads with one token are an enumeration: the sinks carry that finding
    // too (once: repeats are deduplicated).
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0]["rule"]["id"], "BOLA-1");
    assert_eq!(findings[0]["route"]["template"], "/k/{id}");
    let summary = stderr
        .iter()
        .find(|l| l.contains("exit summary"))
        .expect("summary");
    assert!(
        summary.contains(&format!("sink file: delivered={} ", 2 * N + 1)),
        "{summary}"
    );
}
