//! End-to-end: container and pod enrichment. Real cgroup v2 directories named the way
//! containerd, CRI-O and Docker name theirs, real curl processes moved into them, and a stand-in
//! API server that answers with a recorded pod list of this node. Root; CI runs them.

use std::path::{Path, PathBuf};

use cleartap_e2e::{
    Agent, TempDir, WAIT, at, free_port,
    peers::{PYTHON, curl, peers_dir, s_server},
    pid_is, privileged, run_client, wait_for_port,
};
use serde_json::{Value, json};

/// In the recorded pod list: container "api" of shop/checkout-api-7c9d8f6b5-x2lqz.
const LISTED_CONTAINER: &str = "8d2f0c1b7e3a4f5d9c6b0a1e2d3f4c5b6a7e8d9c0b1a2f3e4d5c6b7a8e9f0a1b";
const CHECKOUT_POD_UID: &str = "0f4c1d2e-3a4b-4c5d-8e9f-0123456789ab";
/// A container of the pending pod reports/batch-report-…: not in its status yet, so only the
/// pod uid in the cgroup path finds the pod.
const STARTING_CONTAINER: &str = "5b1e0f3c9a8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f";
const BATCH_POD_UID: &str = "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d";
/// A plain Docker container on the node, no pod.
const DOCKER_CONTAINER: &str = "d0c4e7f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d";

fn cgroup2_root() -> PathBuf {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    mountinfo
        .lines()
        .find_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            if !right.starts_with("cgroup2 ") {
                return None;
            }
            left.split(' ').nth(4).map(PathBuf::from)
        })
        .expect("a cgroup v2 mount (the kernel's cgroup ids are cgroup v2 inodes)")
}

/// cgroup directories made for one test, removed (deepest first) when dropped.
struct Cgroups(Vec<PathBuf>);

impl Cgroups {
    fn make(&mut self, root: &Path, relative: &str) -> PathBuf {
        let mut dir = root.to_path_buf();
        for part in relative.split('/') {
            dir.push(part);
            if !dir.exists() {
                std::fs::create_dir(&dir)
                    .unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
                self.0.push(dir.clone());
            }
        }
        dir
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        for dir in self.0.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Runs curl inside `cgroup` (the shell moves itself in, then execs curl: same pid).
fn curl_in(cgroup: &Path, url: &str) -> u32 {
    let script = format!(
        "echo $$ > '{}/cgroup.procs' && exec \"$@\"",
        cgroup.display()
    );
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", &script, "sh"])
        .arg(curl(&[]).get_program())
        .args(curl(&["-o", "/dev/null", url]).get_args());
    run_client(&mut cmd).0
}

fn test_root(tag: &str) -> String {
    format!("cleartap-e2e-{tag}-{}", std::process::id())
}

#[test]
fn events_name_container_pod_namespace_and_node() {
    if !privileged() {
        return;
    }
    let dir = TempDir::new("workloads-k8s");
    let root = cgroup2_root();
    let top = test_root("k8s");
    let mut cgroups = Cgroups(Vec::new());
    let listed = cgroups.make(&root, &format!(
        "{top}/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{LISTED_CONTAINER}.scope",
        CHECKOUT_POD_UID.replace('-', "_")
    ));
    let starting = cgroups.make(&root, &format!(
        "{top}/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/crio-{STARTING_CONTAINER}.scope",
        BATCH_POD_UID.replace('-', "_")
    ));
    let docker = cgroups.make(
        &root,
        &format!("{top}/system.slice/docker-{DOCKER_CONTAINER}.scope"),
    );

    let api_port = free_port();
    let token = dir.path("token");
    std::fs::write(&token, "recorded-sa-token\n").expect("token");
    let list = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../agent/tests/fixtures/kubernetes/pods-on-node.json");
    let api = std::process::Command::new(PYTHON)
        .arg(peers_dir().join("k8s_api.py"))
        .arg(api_port.to_string())
        .arg(&list)
        .arg("recorded-sa-token")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start the stand-in API server");
    let _api = cleartap_e2e::Peer(api, "k8s api");
    wait_for_port(api_port, "stand-in API server");

    let tls_port = free_port();
    let server = s_server(&dir, tls_port);
    let api_url = format!("http://127.0.0.1:{api_port}");
    let agent = Agent::start(&[
        "--kubernetes-api",
        &api_url,
        "--kubernetes-token-file",
        &token.to_string_lossy(),
        "--node-name",
        "worker-3",
    ]);
    agent.wait_stderr("kubernetes: 2 pods on node worker-3", WAIT);

    let url = format!("https://127.0.0.1:{tls_port}/");
    let cases = [
        (
            curl_in(&listed, &url),
            json!({"id": LISTED_CONTAINER, "runtime": "containerd"}),
            json!({"node": "worker-3", "namespace": "shop", "pod": "checkout-api-7c9d8f6b5-x2lqz", "pod_uid": CHECKOUT_POD_UID}),
        ),
        (
            curl_in(&starting, &url),
            json!({"id": STARTING_CONTAINER, "runtime": "cri-o"}),
            json!({"node": "worker-3", "namespace": "reports", "pod": "batch-report-28412345-9kq7t", "pod_uid": BATCH_POD_UID}),
        ),
        (
            curl_in(&docker, &url),
            json!({"id": DOCKER_CONTAINER, "runtime": "docker"}),
            json!({"node": "worker-3"}),
        ),
    ];
    for (pid, container, kubernetes) in cases {
        let event = agent.wait_events(1, WAIT, |e| pid_is(e, pid)).remove(0);
        assert_eq!(at(&event, &["connection", "role"]), "client", "{event}");
        assert_eq!(at(&event, &["container"]), &container, "{event}");
        assert_eq!(at(&event, &["kubernetes"]), &kubernetes, "{event}");
    }
    // The server runs on the host: no container, the node only.
    let server_pid = server.0.id();
    let served = agent
        .wait_events(3, WAIT, |e| pid_is(e, server_pid))
        .remove(0);
    assert!(served.get("container").is_none(), "{served}");
    assert_eq!(at(&served, &["kubernetes"]), &json!({"node": "worker-3"}));
    let lines = agent.stop();
    let summary = lines
        .iter()
        .find(|l| l.contains("workloads:"))
        .expect("workloads summary");
    assert!(
        summary.contains("kubernetes node=worker-3 synced=true pods=2 pods_dropped=0 api_errors=0"),
        "{summary}"
    );
}

#[test]
fn without_kubernetes_events_still_name_the_container() {
    if !privileged() {
        return;
    }
    let dir = TempDir::new("workloads-plain");
    let root = cgroup2_root();
    let mut cgroups = Cgroups(Vec::new());
    let docker = cgroups.make(
        &root,
        &format!("{}/docker/{DOCKER_CONTAINER}", test_root("plain")),
    );
    let tls_port = free_port();
    let _server = s_server(&dir, tls_port);
    let agent = Agent::start(&[]);
    let pid = curl_in(&docker, &format!("https://127.0.0.1:{tls_port}/"));
    let event = agent.wait_events(1, WAIT, |e| pid_is(e, pid)).remove(0);
    assert_eq!(
        at(&event, &["container"]),
        &json!({"id": DOCKER_CONTAINER, "runtime": "docker"})
    );
    assert_eq!(event.get("kubernetes"), None::<&Value>, "{event}");
    let lines = agent.stop();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("workloads: cgroups_resolved=") && l.contains("kubernetes off")),
        "{lines:?}"
    );
}
