#!/usr/bin/env python3
"""Offline validation of the Kubernetes deployment: renders the kustomize variants
(`kubectl kustomize`) and the Helm chart (Helm's Go SDK through helm-python-sdk, with
`helm lint --strict`), validates every rendered object against the Kubernetes OpenAPI schemas
(kubernetes-validate, strict: unknown fields are errors), and checks what the agent relies
on: hostPID, NODE_NAME from spec.nodeName, /healthz probes on the metrics port, tolerations,
the mounts, RBAC limited to reading pods, and the privileged or least-privilege security
context. Writes each rendered cleartap.toml to OUT_DIR so `cleartap config check` can read it.

Usage: validate.py OUT_DIR
"""
import json
import os
import subprocess
import sys

import helm_python as helm
import kubernetes_validate
import yaml

K8S_VERSION = "1.34.0"
HERE = os.path.dirname(os.path.abspath(__file__))
CAPABILITIES = ["SYS_ADMIN", "SYS_PTRACE", "DAC_READ_SEARCH", "BPF", "PERFMON"]
MOUNTS = {"/etc/cleartap", "/etc/cleartap-keys", "/var/lib/cleartap", "/sys/kernel/tracing", "/sys/fs/bpf", "/sys/fs/cgroup"}


def fail(variant, message):
    sys.exit(f"{variant}: {message}")


def check(variant, docs, privileged):
    kinds = sorted(d["kind"] for d in docs)
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            fail(variant, f"{doc['kind']}/{doc['metadata']['name']}: {e.message} at {list(e.path)}")
    by_kind = {d["kind"]: d for d in docs}
    for kind in ["DaemonSet", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap"]:
        if kind not in by_kind:
            fail(variant, f"no {kind} among {kinds}")
    pod = by_kind["DaemonSet"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    if pod.get("hostPID") is not True:
        fail(variant, "hostPID must be true")
    if {"operator": "Exists"} not in pod.get("tolerations", []):
        fail(variant, "must tolerate every taint")
    env = {e["name"]: e for e in container["env"]}
    if env.get("NODE_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != "spec.nodeName":
        fail(variant, "NODE_NAME must come from the downward API (spec.nodeName)")
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ["livenessProbe", "readinessProbe"]:
        get = container[probe]["httpGet"]
        if get["path"] != "/healthz" or get["port"] not in ("metrics", ports.get("metrics")):
            fail(variant, f"{probe} must GET /healthz on the metrics port")
    for bound in ["requests", "limits"]:
        if not {"cpu", "memory"} <= set(container["resources"].get(bound, {})):
            fail(variant, f"resources.{bound} must set cpu and memory")
    mounted = {m["mountPath"] for m in container["volumeMounts"]}
    if not MOUNTS <= mounted:
        fail(variant, f"missing mounts {sorted(MOUNTS - mounted)}")
    sc = container["securityContext"]
    if privileged:
        if sc.get("privileged") is not True:
            fail(variant, "default variant must be privileged")
    else:
        if sc.get("privileged") is not False or sc["capabilities"]["drop"] != ["ALL"]:
            fail(variant, "least-privilege variant must drop ALL and not be privileged")
        if sorted(sc["capabilities"]["add"]) != sorted(CAPABILITIES):
            fail(variant, f"capabilities {sc['capabilities']['add']} != {CAPABILITIES}")
        if sc["seccompProfile"]["type"] != "Unconfined":
            fail(variant, "seccomp must be unconfined (its default refuses bpf and perf_event_open)")
    volumes = {v["name"]: v for v in pod["volumes"]}
    keys = next(m for m in container["volumeMounts"] if m["mountPath"] == "/etc/cleartap-keys")
    secret = volumes[keys["name"]].get("secret", {})
    if not secret.get("secretName") or secret.get("optional") is not True or secret.get("defaultMode") != 0o400:
        fail(variant, f"the redaction key must come from an optional Secret, mode 0400: {secret}")
    if "Secret" in by_kind:
        import base64
        key = base64.b64decode(by_kind["Secret"]["data"]["token.key"])
        if len(key) != 32 or by_kind["Secret"]["metadata"]["name"] != secret["secretName"]:
            fail(variant, "the chart's Secret must hold a 32-byte token.key and be the one mounted")
    rules = by_kind["ClusterRole"]["rules"]
    if rules != [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]:
        fail(variant, f"RBAC must only read pods: {rules}")
    binding = by_kind["ClusterRoleBinding"]
    if binding["subjects"][0]["name"] != pod["serviceAccountName"]:
        fail(variant, "the ClusterRoleBinding must bind the DaemonSet's service account")
    print(f"ok {variant}: {len(docs)} objects valid against Kubernetes {K8S_VERSION}: {', '.join(kinds)}")
    return by_kind["ConfigMap"]["data"]["cleartap.toml"]


def load_all(text):
    return [d for d in yaml.safe_load_all(text) if d]


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    configs = {}
    for variant, privileged in [("base", True), ("least-privilege", False)]:
        rendered = subprocess.run(
            ["kubectl", "kustomize", os.path.join(HERE, "kubernetes", variant)],
            check=True, capture_output=True, text=True,
        ).stdout
        configs[f"kustomize-{variant}"] = check(f"kustomize {variant}", load_all(rendered), privileged)

    chart_dir = os.path.join(HERE, "helm", "cleartap")
    report = helm.lint(chart_dir, strict=True, kube_version=f"v{K8S_VERSION}")
    errors = report["errors"] + [m["error"] for m in report["messages"] if m["severity"] >= 3]
    if errors:
        fail("helm lint", errors)
    chart = helm.Chart.load(chart_dir)
    sink = '[[sinks]]\nname = "file"\ntype = "file"\npath = "/var/lib/cleartap/events.jsonl"\n'
    for variant, values, privileged in [
        ("default", None, True),
        ("least-privilege", {"privileged": False, "extraConfig": sink}, False),
    ]:
        manifests = chart.render(values, name="cleartap", namespace="cleartap", is_install=True)
        docs = [d for text in manifests.values() for d in load_all(text)]
        configs[f"helm-{variant}"] = check(f"helm {variant}", docs, privileged)
    try:
        chart.render({"image": {"repository": ""}}, name="cleartap", namespace="cleartap")
        fail("helm values schema", "an empty image.repository was accepted")
    except helm.HelmError:
        pass
    for name, text in configs.items():
        with open(os.path.join(out_dir, f"{name}.toml"), "w") as f:
            f.write(text)
    print(json.dumps(sorted(configs)))


if __name__ == "__main__":
    main()
