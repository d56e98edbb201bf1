//! Renderings of the typed exchange and finding for SIEMs, chosen per sink: OCSF (HTTP
//! Activity, class 4002; Detection Finding, 2004) and ECS (Elastic Common Schema). Both read
//! the same typed record as the native JSON, so they carry exactly what it carries — redaction
//! included.

use serde_json::{Value, json};

use crate::{
    detect::{
        Finding,
        catalogue::{Confidence, Severity},
    },
    enforce::evidence::{Action, EnforcementEvent},
    event::{Connection, Endpoint, ExchangeEvent, Headers, Kubernetes, Role},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Native,
    Ocsf,
    Ecs,
}

pub const OCSF_VERSION: &str = "1.3.0";

fn endpoint(e: Option<Endpoint>) -> Value {
    e.map_or(Value::Null, |e| json!({ "ip": e.ip, "port": e.port }))
}

/// (source, destination) endpoints: the client is the source.
fn source_destination(c: &Connection<'_>) -> (Value, Value) {
    let (local, remote) = (endpoint(c.local), endpoint(c.remote));
    if c.role == Role::Server {
        (remote, local)
    } else {
        (local, remote)
    }
}

fn headers_list(headers: &Headers<'_>) -> Value {
    Value::Array(
        headers
            .iter()
            .map(|h| json!({ "name": h.name, "value": h.value }))
            .collect(),
    )
}

fn kubernetes(k: Option<&Kubernetes<'_>>) -> Value {
    k.map_or(Value::Null, |k| {
        serde_json::to_value(k).unwrap_or(Value::Null)
    })
}

/// OCSF HTTP Activity: activity from the method (OCSF 1.3 ids), `type_uid = 400200 + id`.
pub fn ocsf(event: &ExchangeEvent<'_>, epoch_ms: i64) -> Value {
    let req = event.request.as_ref();
    let res = event.response.as_ref();
    let activity_id = match req.map_or("", |r| r.method.as_ref()) {
        "CONNECT" => 1,
        "DELETE" => 2,
        "GET" => 3,
        "HEAD" => 4,
        "OPTIONS" => 5,
        "POST" => 6,
        "PUT" => 7,
        "TRACE" => 8,
        _ => 99,
    };
    let c = &event.connection;
    let (src, dst) = source_destination(c);
    let p = &event.process;
    let mut out = json!({
        "class_uid": 4002,
        "class_name": "HTTP Activity",
        "category_uid": 4,
        "category_name": "Network Activity",
        "activity_id": activity_id,
        "type_uid": 400200 + activity_id,
        "severity_id": 1,
        "time": epoch_ms,
        "metadata": {
            "version": OCSF_VERSION,
            "product": { "name": "cleartap", "vendor_name": "cleartap" },
            "original_schema": event.schema,
        },
        "src_endpoint": src,
        "dst_endpoint": dst,
        "connection_info": { "protocol_name": "tcp", "direction": c.role },
        "actor": { "process": {
            "pid": p.pid, "tid": p.tid, "name": p.comm,
            "file": { "path": p.exe },
        }},
        "device": { "hostname": event.host },
        "duration": event.duration_us.map(|us| us / 1000),
        "unmapped": {
            "cgroup_id": p.cgroup_id,
            "tls": c.tls,
            "tls_library": c.library,
            "tls_library_version": c.library_version,
            "fd": c.fd,
            "latency_us": event.latency_us,
            "kubernetes": kubernetes(event.kubernetes.as_ref()),
            "http2_stream_id": event.stream_id,
            "http2_reset_code": event.reset_code,
            "grpc": event.grpc,
        },
    });
    if let Some(container) = &event.container {
        let k = event.kubernetes.as_ref();
        set(
            &mut out,
            "container",
            json!({
                "uid": container.id,
                "runtime": container.runtime,
                "pod_uuid": k.and_then(|k| k.pod_uid.as_deref()),
                "orchestrator": k.map(|_| "kubernetes"),
            }),
        );
    }
    if let Some(req) = req {
        set(
            &mut out,
            "http_request",
            json!({
                "http_method": req.method,
                "version": req.version.as_str(),
                "url": {
                    "path": req.path,
                    "query_string": req.query,
                    "hostname": req.headers.get("host"),
                },
                "user_agent": req.headers.get("user-agent"),
                "http_headers": headers_list(&req.headers),
                "length": req.body_size,
            }),
        );
    }
    if let Some(res) = res {
        set(
            &mut out,
            "http_response",
            json!({
                "code": res.status,
                "message": res.reason,
                "http_headers": headers_list(&res.headers),
                "length": res.body_size,
                "content_type": res.headers.get("content-type"),
            }),
        );
    }
    strip_nulls(&mut out);
    out
}

/// ECS 8.x field set: event.*, http.*, url.*, source.*, destination.*, process.*, host.*.
pub fn ecs(event: &ExchangeEvent<'_>) -> Value {
    let req = event.request.as_ref();
    let res = event.response.as_ref();
    let c = &event.connection;
    let (src, dst) = source_destination(c);
    let p = &event.process;
    let mut out = json!({
        "@timestamp": event.time,
        "ecs": { "version": "8.11.0" },
        "event": {
            "kind": "event",
            "category": ["network", "web"],
            "type": ["access", "connection"],
            "module": "cleartap",
            "dataset": "cleartap.http_exchange",
            "duration": event.duration_us.map(|us| us * 1000),
        },
        "host": { "hostname": event.host },
        "source": src,
        "destination": dst,
        "network": { "transport": "tcp", "protocol": "http" },
        "process": {
            "pid": p.pid, "name": p.comm, "executable": p.exe,
            "thread": { "id": p.tid },
        },
        "http": {
            "version": req.map(|r| r.version.number()),
            "request": {
                "method": req.map(|r| &r.method),
                "body": { "bytes": req.and_then(|r| r.body_size) },
                "headers": req.map(|r| &r.headers),
            },
            "response": {
                "status_code": res.map(|r| r.status),
                "body": { "bytes": res.and_then(|r| r.body_size) },
                "headers": res.map(|r| &r.headers),
            },
        },
        "url": {
            "path": req.map(|r| &r.path),
            "query": req.and_then(|r| r.query.as_ref()),
            "domain": req.and_then(|r| r.headers.get("host")),
        },
        "user_agent": { "original": req.and_then(|r| r.headers.get("user-agent")) },
        "cleartap": {
            "schema": event.schema,
            "cgroup_id": p.cgroup_id,
            "role": c.role,
            "tls": c.tls,
            "tls_library": c.library,
            "tls_library_version": c.library_version,
            "fd": c.fd,
            "latency_us": event.latency_us,
            "kubernetes_node": event.kubernetes.as_ref().map(|k| &k.node),
            "http2_stream_id": event.stream_id,
            "http2_reset_code": event.reset_code,
            "grpc": event.grpc,
        },
    });
    if let Some(container) = &event.container {
        set(
            &mut out,
            "container",
            json!({
                "id": container.id,
                "runtime": container.runtime,
            }),
        );
    }
    if let Some(k) = &event.kubernetes
        && k.pod.is_some()
    {
        set(
            &mut out,
            "orchestrator",
            json!({
                "type": "kubernetes",
                "namespace": k.namespace,
                "resource": { "type": "pod", "name": k.pod, "id": k.pod_uid },
            }),
        );
    }
    if c.tls {
        set(&mut out, "tls", json!({ "established": true }));
    }
    strip_nulls(&mut out);
    out
}

fn severity_id(severity: Severity) -> u8 {
    match severity {
        Severity::Low => 2,
        Severity::Medium => 3,
        Severity::High => 4,
        Severity::Critical => 5,
    }
}

/// OCSF Detection Finding (class 2004) for a `cleartap.finding/1`.
pub fn finding_ocsf(f: &Finding, epoch_ms: i64) -> Value {
    let rule = f.rule.info();
    let x = &f.exchange;
    let confidence_id = match rule.confidence {
        Confidence::Low => 1,
        Confidence::Medium => 2,
        Confidence::High => 3,
    };
    let mut out = json!({
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "category_uid": 2,
        "category_name": "Findings",
        "activity_id": 1,
        "type_uid": 200401,
        "severity_id": severity_id(rule.severity),
        "severity": rule.severity,
        "confidence_id": confidence_id,
        "time": epoch_ms,
        "metadata": {
            "version": OCSF_VERSION,
            "product": { "name": "cleartap", "vendor_name": "cleartap" },
            "original_schema": crate::detect::finding::SCHEMA,
        },
        "finding_info": {
            "uid": format!("{}:{}:{}", rule.code, f.route.template, epoch_ms),
            "title": rule.title,
            "types": [rule.owasp],
            "analytic": { "uid": rule.code, "name": rule.title, "type_id": 1, "type": "Rule" },
        },
        "evidences": [{
            "data": f.evidence,
            "src_endpoint": endpoint(f.stream.remote),
            "dst_endpoint": endpoint(f.stream.local),
            "process": { "pid": x.process.pid, "name": x.process.comm },
            "http_request": {
                "http_method": x.request.method,
                "url": { "path": x.request.path, "query_string": x.request.query, "hostname": f.route.host },
            },
        }],
        "device": { "hostname": f.host },
        "unmapped": {
            "actor_token": f.actor.token,
            "actor_client_ip": f.actor.client_ip,
            "route_template": f.route.template,
            "occurrences": f.occurrences,
        },
    });
    strip_nulls(&mut out);
    out
}

/// ECS alert for a `cleartap.finding/1`: event.kind alert, rule.*, the exchange's fields.
pub fn finding_ecs(f: &Finding) -> Value {
    let rule = f.rule.info();
    let x = &f.exchange;
    let mut out = json!({
        "@timestamp": x.time,
        "ecs": { "version": "8.11.0" },
        "event": {
            "kind": "alert",
            "category": ["intrusion_detection", "web"],
            "type": ["info"],
            "module": "cleartap",
            "dataset": "cleartap.finding",
            "severity": severity_id(rule.severity),
        },
        "rule": {
            "id": rule.code,
            "name": rule.title,
            "category": rule.owasp,
            "ruleset": "cleartap",
        },
        "host": { "hostname": f.host },
        "source": { "ip": f.actor.client_ip },
        "url": { "path": x.request.path, "query": x.request.query, "domain": f.route.host },
        "http": { "request": { "method": x.request.method }, "response": { "status_code": x.response.status } },
        "process": { "pid": x.process.pid, "name": x.process.comm },
        "cleartap": {
            "schema": crate::detect::finding::SCHEMA,
            "route_template": f.route.template,
            "actor_token": f.actor.token,
            "evidence": f.evidence,
            "severity": rule.severity,
            "confidence": rule.confidence,
            "occurrences": f.occurrences,
        },
    });
    strip_nulls(&mut out);
    out
}

/// OCSF Detection Finding (2004) for a `cleartap.enforcement/1`: the verdict as the finding's
/// action and disposition (Denied/Blocked, or Allowed in monitor mode), the evidence as is.
pub fn enforcement_ocsf(e: &EnforcementEvent, epoch_ms: i64) -> Value {
    let denied = e.action != Action::WouldBlock;
    let mut out = json!({
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "category_uid": 2,
        "category_name": "Findings",
        "activity_id": 1,
        "type_uid": 200401,
        "severity_id": 4,
        "severity": "high",
        "time": epoch_ms,
        "action_id": if denied { 2 } else { 1 },
        "action": if denied { "Denied" } else { "Allowed" },
        "disposition_id": if denied { 2 } else { 1 },
        "disposition": if denied { "Blocked" } else { "Allowed" },
        "metadata": {
            "version": OCSF_VERSION,
            "product": { "name": "cleartap", "vendor_name": "cleartap" },
            "original_schema": crate::enforce::evidence::SCHEMA,
        },
        "finding_info": {
            "uid": format!("enforce:{}:{}:{}", e.process.pid, e.connection.fd, epoch_ms),
            "title": "Abusive actor stopped on a protected route",
            "analytic": { "uid": e.policy, "name": e.policy, "type_id": 1, "type": "Rule" },
        },
        "process": { "pid": e.process.pid, "name": e.process.comm },
        "device": { "hostname": e.host },
        "unmapped": serde_json::to_value(e).unwrap_or(Value::Null),
    });
    strip_nulls(&mut out);
    out
}

/// ECS event for a `cleartap.enforcement/1`: event.type denied (allowed in monitor mode).
pub fn enforcement_ecs(e: &EnforcementEvent) -> Value {
    let denied = e.action != Action::WouldBlock;
    let mut out = json!({
        "@timestamp": e.time,
        "ecs": { "version": "8.11.0" },
        "event": {
            "kind": "event",
            "category": ["intrusion_detection", "network"],
            "type": [if denied { "denied" } else { "allowed" }],
            "action": e.action,
            "module": "cleartap",
            "dataset": "cleartap.enforcement",
        },
        "rule": { "name": e.policy, "ruleset": "cleartap" },
        "host": { "hostname": e.host },
        "process": { "pid": e.process.pid, "name": e.process.comm, "executable": e.process.exe },
        "http": { "request": { "method": e.route.method } },
        "cleartap": serde_json::to_value(e).unwrap_or(Value::Null),
    });
    strip_nulls(&mut out);
    out
}

/// Sets a member of a JSON object (`json!({..})` always builds one; anything else is left as is).
fn set(out: &mut Value, key: &str, value: Value) {
    if let Some(o) = out.as_object_mut() {
        o.insert(key.to_owned(), value);
    }
}

/// Removes null members and objects left empty: SIEMs index absent fields better than nulls.
fn strip_nulls(v: &mut Value) {
    if let Value::Object(map) = v {
        for child in map.values_mut() {
            strip_nulls(child);
        }
        map.retain(|_, c| !(c.is_null() || c.as_object().is_some_and(|o| o.is_empty())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn golden() -> ExchangeEvent<'static> {
        serde_json::from_str(include_str!("../../tests/golden/exchange_event.json"))
            .expect("golden event")
    }

    #[test]
    fn ocsf_http_activity_from_the_golden_event() {
        let o = ocsf(&golden(), 1_763_700_000_001);
        assert_eq!(o["class_uid"], 4002);
        assert_eq!(o["activity_id"], 6);
        assert_eq!(o["type_uid"], 400206);
        assert_eq!(o["http_request"]["http_method"], "POST");
        assert_eq!(o["http_request"]["url"]["path"], "/api/v1/users");
        assert_eq!(o["http_request"]["url"]["hostname"], "api.local");
        assert_eq!(o["http_response"]["code"], 201);
        assert_eq!(o["src_endpoint"]["port"], 50000);
        assert_eq!(o["dst_endpoint"]["port"], 8443);
        assert_eq!(o["actor"]["process"]["name"], "curl");
        assert_eq!(o["time"], 1_763_700_000_001i64);
        assert_eq!(o["container"]["runtime"], "containerd");
        assert_eq!(
            o["container"]["pod_uuid"],
            "0f4c1d2e-3a4b-4c5d-8e9f-0123456789ab"
        );
        assert_eq!(o["container"]["orchestrator"], "kubernetes");
        assert_eq!(
            o["unmapped"]["kubernetes"]["pod"],
            "checkout-api-7c9d8f6b5-x2lqz"
        );
        let text = o.to_string();
        assert!(text.contains("Bearer [REDACTED:81dcd9d1e4b785bc]") && !text.contains("null"));
    }

    #[test]
    fn ecs_fields_from_the_golden_event() {
        let e = ecs(&golden());
        assert_eq!(e["@timestamp"], "2025-11-21T04:40:00.001Z");
        assert_eq!(e["http"]["request"]["method"], "POST");
        assert_eq!(e["http"]["response"]["status_code"], 201);
        assert_eq!(e["http"]["version"], "1.1");
        assert_eq!(
            e["url"]["query"],
            "id=7&api_key=[REDACTED:60a4135bea98eb18]"
        );
        assert_eq!(e["source"]["port"], 50000);
        assert_eq!(e["destination"]["ip"], "127.0.0.1");
        assert_eq!(e["process"]["executable"], "/usr/bin/curl");
        assert_eq!(e["tls"]["established"], true);
        assert_eq!(e["event"]["duration"], 250_000);
        assert_eq!(
            e["container"]["id"],
            "8d2f0c1b7e3a4f5d9c6b0a1e2d3f4c5b6a7e8d9c0b1a2f3e4d5c6b7a8e9f0a1b"
        );
        assert_eq!(e["orchestrator"]["namespace"], "shop");
        assert_eq!(
            e["orchestrator"]["resource"]["name"],
            "checkout-api-7c9d8f6b5-x2lqz"
        );
        assert_eq!(e["cleartap"]["kubernetes_node"], "worker-3");
    }
}
