//! The Kubernetes deployment, validated offline: deploy/validate.py renders the kustomize
//! variants and the Helm chart and validates every object (see its docstring); the agent then
//! checks each rendered cleartap.toml with `cleartap config check`. Needs kubectl and the
//! PyPI packages `cargo xtask test` installs; not root.

use std::process::Command;

use cleartap_e2e::{TempDir, agent_binary};

#[test]
fn manifests_render_validate_and_carry_a_valid_agent_config() {
    let dir = TempDir::new("deploy");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/validate.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(&dir.0)
        .output()
        .expect("run deploy/validate.py (python3 with helm-python-sdk and kubernetes-validate)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "deploy/validate.py failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let variants: Vec<String> = serde_json::from_str(stdout.lines().last().expect("variants"))
        .expect("JSON list of variants");
    assert_eq!(
        variants,
        [
            "helm-default",
            "helm-least-privilege",
            "kustomize-base",
            "kustomize-least-privilege"
        ]
    );
    assert_eq!(stdout.matches("ok ").count(), 4, "{stdout}");
    for variant in variants {
        let config = dir.path(&format!("{variant}.toml"));
        let check = Command::new(agent_binary())
            .args(["config", "check", "--config"])
            .arg(&config)
            .output()
            .expect("cleartap config check");
        assert!(
            check.status.success(),
            "{variant}: {}",
            String::from_utf8_lossy(&check.stderr)
        );
    }
}
