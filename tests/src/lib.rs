//! Harness for the privileged end-to-end tests: starts the real `cleartap` binary and real TLS
//! peers on loopback, and collects the agent's JSON events.

use std::{
    io::{BufRead, BufReader},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::Value;

/// True when the test may run. As non-root it fails under CI=true and is skipped (with the
/// reason printed) elsewhere: a privileged test never passes silently in CI.
pub fn privileged() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let reason = "end-to-end capture needs root (eBPF programs and uprobes)";
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but {reason}; run the suite as root");
    }
    eprintln!("SKIPPED: {reason}");
    false
}

/// The JSON Schema of the native event (schema/http_exchange.schema.json), compiled.
pub fn event_schema() -> jsonschema::Validator {
    compile_schema("http_exchange.schema.json")
}

/// The JSON Schema of enforcement evidence (schema/enforcement.schema.json), compiled.
pub fn enforcement_schema() -> jsonschema::Validator {
    compile_schema("enforcement.schema.json")
}

/// The JSON Schema of findings (schema/finding.schema.json), compiled.
pub fn finding_schema() -> jsonschema::Validator {
    compile_schema("finding.schema.json")
}

fn compile_schema(name: &str) -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../schema")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("schema file");
    let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("schema compiles")
}

pub fn agent_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("CLEARTAP_BIN") {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/cleartap")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

pub fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on port {port} within 15 s");
}

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("cleartap-e2e-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Self-signed certificate and key for CN=localhost in `dir`.
pub fn make_cert(dir: &TempDir) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.path("cert.pem"), dir.path("key.pem"));
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("run openssl req");
    assert!(status.success(), "openssl req failed");
    (cert, key)
}

/// A child process killed on drop (servers).
pub struct Peer(pub Child, pub &'static str);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub struct Agent {
    child: Option<Child>,
    events: Arc<Mutex<Vec<Value>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Agent {
    /// Starts cleartap and waits until it reports its probes live.
    pub fn start(args: &[&str]) -> Self {
        Self::start_with_env(args, &[])
    }

    /// As `start`, with extra environment variables for the agent.
    pub fn start_with_env(args: &[&str], envs: &[(&str, &str)]) -> Self {
        let binary = agent_binary();
        assert!(
            binary.exists(),
            "{} not built (run `cargo xtask test`)",
            binary.display()
        );
        let mut cmd = Command::new(&binary);
        cmd.args(args)
            .envs(envs.iter().copied())
            .env("RUST_LOG", "info");
        Self::from_command(cmd)
    }

    /// Starts the agent with any command line that runs it in the foreground (e.g. `podman
    /// run`, which forwards signals to the container) and waits for its probes.
    pub fn from_command(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
        let events = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        {
            let events = events.clone();
            let (schema, finding_schema, enforcement_schema) =
                (event_schema(), finding_schema(), enforcement_schema());
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    let value: Value = serde_json::from_str(&line)
                        .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
                    // Every event any end-to-end test sees is checked against its schema file;
                    // a violation is kept and fails the test at its next look at the events.
                    let checker = if value["schema"] == "cleartap.finding/1" {
                        &finding_schema
                    } else if value["schema"] == "cleartap.enforcement/1" {
                        &enforcement_schema
                    } else {
                        &schema
                    };
                    if let Err(e) = checker.validate(&value) {
                        let e = format!(
                            "event violates its schema file under schema/: {e} at {}: {line}",
                            e.instance_path()
                        );
                        events.lock().expect("lock").push(Value::String(e));
                        continue;
                    }
                    events.lock().expect("lock").push(value);
                }
            });
        }
        {
            let stderr = stderr.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    eprintln!("[cleartap] {line}");
                    stderr.lock().expect("lock").push(line);
                }
            });
        }
        let agent = Self {
            child: Some(child),
            events,
            stderr,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if agent
                .stderr_lines()
                .iter()
                .any(|l| l.contains("probes live"))
            {
                return agent;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "cleartap did not report live probes within 60 s; stderr: {:#?}",
            agent.stderr_lines()
        );
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    /// True while the agent process has not exited.
    pub fn is_running(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).is_ok_and(|s| {
            !s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
    }

    /// Sends `signal` (e.g. SIGHUP) without waiting for anything.
    pub fn signal(&self, signal: i32) {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(self.pid() as i32, signal) };
    }

    /// Waits until a stderr line contains `needle` (panics with stderr after `timeout`).
    pub fn wait_stderr(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.stderr_lines().into_iter().find(|l| l.contains(needle)) {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "no stderr line with {needle:?} within {timeout:?}: {:#?}",
                self.stderr_lines()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().expect("lock").clone()
    }

    /// Findings (schema cleartap.finding/1) seen so far.
    pub fn findings(&self) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["schema"] == "cleartap.finding/1")
            .collect()
    }

    pub fn events(&self) -> Vec<Value> {
        let events = self.events.lock().expect("lock").clone();
        if let Some(violation) = events.iter().find_map(Value::as_str) {
            panic!("{violation}");
        }
        events
    }

    /// Waits until `count` events satisfy `pred`; returns them in arrival order.
    pub fn wait_events(
        &self,
        count: usize,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let found: Vec<Value> = self.events().into_iter().filter(|e| pred(e)).collect();
            if found.len() >= count || Instant::now() >= deadline {
                assert!(
                    found.len() >= count,
                    "expected {count} matching events within {timeout:?}, got {}; all events: {:#?}; stderr: {:#?}",
                    found.len(),
                    self.events(),
                    self.stderr_lines()
                );
                return found;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then asserts a clean exit (status 0, summary logged, probes detached).
    pub fn stop(self) -> Vec<String> {
        self.stop_with(libc::SIGTERM)
    }

    /// Sends `signal` (SIGTERM or SIGINT, i.e. Ctrl-C) and asserts a clean exit.
    pub fn stop_with(mut self, signal: i32) -> Vec<String> {
        let mut child = self.child.take().expect("running");
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, signal) };
        let status = child.wait().expect("wait cleartap");
        std::thread::sleep(Duration::from_millis(100));
        let lines = self.stderr_lines();
        assert!(
            status.success(),
            "cleartap exited with {status}; stderr: {lines:#?}"
        );
        assert!(
            lines.iter().any(|l| l.contains("exit summary")),
            "no exit summary: {lines:#?}"
        );
        assert!(
            lines.iter().any(|l| l.contains("all probes detached")),
            "{lines:#?}"
        );
        lines
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs a client to completion, returning (pid, stdout). Panics with its stderr on failure.
pub fn run_client(cmd: &mut Command) -> (u32, String) {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
    let pid = child.id();
    let out = child.wait_with_output().expect("client output");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    (pid, String::from_utf8_lossy(&out.stdout).into_owned())
}

/// How long a test waits for an expected event.
pub const WAIT: Duration = Duration::from_secs(15);

/// A JSON string value, "" when absent or not a string.
pub fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// A JSON number value, u64::MAX when absent (so it never equals an expected value by accident).
pub fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or(u64::MAX)
}

/// `event[a][b]...` as a JSON value (Null when absent).
pub fn at<'a>(event: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(event, |v, k| &v[*k])
}

pub fn pid_is(event: &Value, pid: u32) -> bool {
    at(event, &["process", "pid"]).as_u64() == Some(u64::from(pid))
}

/// The redaction tag the agent writes for `secret` under the key in `key_file`, computed
/// independently with `openssl dgst -mac HMAC`: `[REDACTED:<first 16 hex digits>]`.
pub fn redaction_tag(key_file: &Path, secret: &str) -> String {
    let key = std::fs::read(key_file).expect("token key file");
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-mac", "HMAC", "-macopt"])
        .arg(format!("hexkey:{hex}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl dgst");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(secret.as_bytes())
        .expect("write secret");
    let out = child.wait_with_output().expect("openssl output");
    let text = String::from_utf8_lossy(&out.stdout);
    let digest = text.rsplit(' ').next().unwrap_or("").trim();
    assert_eq!(digest.len(), 64, "openssl dgst said: {text}");
    format!("[REDACTED:{}]", &digest[..16])
}

/// `name=value` from the agent's exit summary line among `lines`.
pub fn summary_counter(lines: &[String], name: &str) -> u64 {
    let line = lines
        .iter()
        .find(|l| l.contains("exit summary"))
        .unwrap_or_else(|| panic!("no exit summary line in {lines:#?}"));
    let key = format!(" {name}=");
    let start = line
        .find(&key)
        .unwrap_or_else(|| panic!("{name} missing: {line}"))
        + key.len();
    line[start..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} not a number: {line}"))
}
pub mod golang;
pub mod peers;
pub mod qemu;
