//! The decision service for gateways already on the node (`[enforce] decision_listen`, off by
//! default): nginx `auth_request`, Traefik ForwardAuth and Envoy `ext_authz` (HTTP mode) ask it
//! about each request before the server sees it, and get 200 (allow) or 403 (deny) from the same
//! lists and policy the kernel applies. It covers stacks the probes do not see and stops a request
//! before the server processes it. Every deny (or would-deny in monitor mode) gets the same
//! `cleartap.enforcement/1` evidence, with `point: "decision_service"`.
//!
//! The original request comes from the headers gateways send: the method from
//! `X-Original-Method` / `X-Forwarded-Method` (else the subrequest's own), the URI from
//! `X-Original-URI` / `X-Forwarded-Uri` (else the subrequest's own path, as Envoy sends it), the
//! credential from `Authorization` or `X-Api-Key` exactly as the kernel reads them.

use std::{
    collections::HashMap,
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, RwLock},
};

use agent_common::enforce::{credential_key, credential_of};
use http_body_util::Full;
use hyper::{Request, Response, StatusCode, body::Bytes, service::service_fn};

use super::{
    Mode,
    evidence::{
        Action, ActorEvidence, ConnectionEvidence, Endpoint, EnforcementEvent, Listing,
        ProcessEvidence, ResetEvidence, RouteEvidence,
    },
    host_route_key, route_key,
};

/// What a decision needs of one listed actor or route.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    /// The actor's tag, or `METHOD template`.
    pub what: String,
    pub host: Option<String>,
    pub listing: Option<Listing>,
    pub until_ms: i64,
    pub any_route: bool,
}

/// A copy of the lists and settings for the service's tasks, refreshed by the enforce stage
/// when they change (at most once per capture-loop flush).
#[derive(Debug, Clone, Default)]
pub struct Lists {
    pub mode: Mode,
    pub any_route: bool,
    pub sip_key: [u64; 2],
    pub actors: HashMap<u64, Entry>,
    pub routes: HashMap<u64, Entry>,
}

pub type SharedLists = Arc<RwLock<Lists>>;

/// The verdict on one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Listed: denied in enforce mode, reported in monitor mode. Keys of the actor and route.
    Listed {
        actor: u64,
        route: u64,
    },
}

fn header<'h>(req: &'h hyper::HeaderMap, name: &str) -> Option<&'h [u8]> {
    req.get(name).map(hyper::header::HeaderValue::as_bytes)
}

/// The original method and path of the request a gateway asks about.
pub fn original(headers: &hyper::HeaderMap, own_method: &str, own_path: &str) -> (String, String) {
    let text = |name| header(headers, name).and_then(|v| std::str::from_utf8(v).ok());
    let method = text("x-original-method")
        .or_else(|| text("x-forwarded-method"))
        .unwrap_or(own_method)
        .to_ascii_uppercase();
    let uri = text("x-original-uri")
        .or_else(|| text("x-forwarded-uri"))
        .unwrap_or(own_path);
    let path = uri.split(['?', '#']).next().unwrap_or("").to_owned();
    (method, path)
}

/// Decides on one request from the lists alone (no state changes).
pub fn decide(
    lists: &Lists,
    headers: &hyper::HeaderMap,
    method: &str,
    path: &str,
    now_ms: i64,
) -> Verdict {
    if lists.mode == Mode::Off {
        return Verdict::Allow;
    }
    // As the kernel: the first Authorization when there is one, else X-Api-Key.
    let credential = match header(headers, "authorization") {
        Some(v) => credential_of("authorization", v),
        None => header(headers, "x-api-key").and_then(|v| credential_of("x-api-key", v)),
    };
    let Some(credential) = credential else {
        return Verdict::Allow;
    };
    let actor = credential_key(lists.sip_key, credential);
    let Some(listed) = lists.actors.get(&actor).filter(|a| a.until_ms > now_ms) else {
        return Verdict::Allow;
    };
    let (template, _) = crate::detect::route::template(path);
    // As the kernel: the route on the request's virtual host first, then on every host.
    let host = header(headers, "x-forwarded-host")
        .or_else(|| header(headers, "host"))
        .and_then(|v| std::str::from_utf8(v).ok())
        .unwrap_or("");
    let listed_route = |key: u64| {
        lists
            .routes
            .get(&key)
            .is_some_and(|r| r.until_ms > now_ms)
            .then_some(key)
    };
    let any_host = route_key(method, &template);
    let matched = host_route_key(host, method, &template)
        .and_then(listed_route)
        .or_else(|| listed_route(any_host));
    let route = matched.unwrap_or(any_host);
    if matched.is_some() || listed.any_route || lists.any_route {
        Verdict::Listed { actor, route }
    } else {
        Verdict::Allow
    }
}

/// The evidence of a decision-service verdict.
pub fn evidence(
    lists: &Lists,
    host: &str,
    peer: SocketAddr,
    listen: SocketAddr,
    actor: u64,
    route: u64,
    credential: &'static str,
) -> EnforcementEvent {
    let a = lists.actors.get(&actor);
    let r = lists.routes.get(&route);
    let enforce = lists.mode == Mode::Enforce;
    let (method, template) = r
        .and_then(|r| r.what.split_once(' '))
        .map(|(m, t)| (Some(m.to_owned()), Some(t.to_owned())))
        .unwrap_or((None, None));
    EnforcementEvent {
        schema: super::evidence::SCHEMA,
        time: crate::event::build::rfc3339(
            i128::from(crate::app::event_loop::unix_now_ms()) * 1_000_000,
        ),
        host: host.to_owned(),
        action: if enforce {
            Action::Blocked
        } else {
            Action::WouldBlock
        },
        mode: if enforce { "enforce" } else { "monitor" },
        point: "decision_service",
        gates: if enforce {
            vec!["decision_service"]
        } else {
            Vec::new()
        },
        policy: if r.is_none() {
            "abusive_actor_on_any_route"
        } else {
            "abusive_actor_on_sensitive_route"
        },
        actor: ActorEvidence {
            token: a.map(|a| a.what.clone()),
            credential,
            client_ip: None,
            listing: a.and_then(|a| a.listing.clone()),
        },
        route: RouteEvidence {
            method,
            template,
            listed_for_host: r.and_then(|r| r.host.clone()),
            listing: r.and_then(|r| r.listing.clone()),
        },
        process: ProcessEvidence {
            pid: 0,
            comm: String::new(),
            exe: None,
            cgroup_id: 0,
        },
        connection: ConnectionEvidence {
            role: "server",
            local: Some(Endpoint {
                ip: listen.ip().to_string(),
                port: listen.port(),
            }),
            remote: Some(Endpoint {
                ip: peer.ip().to_string(),
                port: peer.port(),
            }),
            fd: -1,
        },
        reset: ResetEvidence {
            attempted: false,
            done: false,
            reason: Some("decision_service"),
            decision_to_reset_us: None,
        },
    }
}

fn answer(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response
}

/// Serves decisions on `addr` until the agent exits; evidence goes to `events` (the capture
/// loop writes it to the sinks and the audit log).
pub async fn serve(
    addr: SocketAddr,
    lists: SharedLists,
    events: tokio::sync::mpsc::Sender<EnforcementEvent>,
    host: String,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let listen = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let (lists, events, host) = (lists.clone(), events.clone(), host.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let (method, path) =
                        original(req.headers(), req.method().as_str(), req.uri().path());
                    let now_ms = crate::app::event_loop::unix_now_ms();
                    let (response, event) = match lists.read() {
                        Err(_) => (answer(StatusCode::OK, "allow\n"), None),
                        Ok(lists) => match decide(&lists, req.headers(), &method, &path, now_ms) {
                            Verdict::Allow => (answer(StatusCode::OK, "allow\n"), None),
                            Verdict::Listed { actor, route } => {
                                let credential = if req.headers().contains_key("authorization") {
                                    "authorization"
                                } else {
                                    "x-api-key"
                                };
                                let event =
                                    evidence(&lists, &host, peer, listen, actor, route, credential);
                                let response = if lists.mode == Mode::Enforce {
                                    answer(StatusCode::FORBIDDEN, "deny\n")
                                } else {
                                    answer(StatusCode::OK, "allow (monitor)\n")
                                };
                                (response, Some(event))
                            }
                        },
                    };
                    let events = events.clone();
                    async move {
                        // A full queue drops evidence rather than delaying the gateway; counted
                        // by the loop as decision_evidence_dropped.
                        if let Some(event) = event
                            && events.try_send(event).is_err()
                        {
                            DROPPED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        Ok::<_, Infallible>(response)
                    }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    Ok(())
}

/// Evidence the service could not hand to the capture loop (its queue was full).
pub static DROPPED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> hyper::HeaderMap {
        let mut h = hyper::HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, hyper::header::HeaderValue::from_static(v));
        }
        h
    }

    fn lists(mode: Mode) -> Lists {
        let sip_key = [1, 2];
        let actor = credential_key(sip_key, b"bad");
        let mut lists = Lists {
            mode,
            sip_key,
            ..Lists::default()
        };
        let listed = |what: &str| Entry {
            what: what.into(),
            until_ms: 10_000,
            ..Entry::default()
        };
        lists.actors.insert(actor, listed("[REDACTED:00]"));
        lists
            .routes
            .insert(route_key("GET", "/orders/{id}"), listed("GET /orders/{id}"));
        let on_shop = host_route_key("shop.test", "GET", "/secret").unwrap_or_default();
        lists.routes.insert(on_shop, listed("GET /secret"));
        lists
    }

    #[test]
    fn a_route_listed_for_one_host_is_denied_on_that_host_only() {
        let l = lists(Mode::Enforce);
        let bad = |host: &'static str| headers(&[("authorization", "Bearer bad"), ("host", host)]);
        assert!(matches!(
            decide(&l, &bad("SHOP.test:8443"), "GET", "/secret", 0),
            Verdict::Listed { .. }
        ));
        assert_eq!(
            decide(&l, &bad("www.test"), "GET", "/secret", 0),
            Verdict::Allow
        );
        // The gateway's own Host is not the request's: X-Forwarded-Host wins.
        let forwarded = headers(&[
            ("authorization", "Bearer bad"),
            ("host", "127.0.0.1:9465"),
            ("x-forwarded-host", "shop.test"),
        ]);
        assert!(matches!(
            decide(&l, &forwarded, "GET", "/secret", 0),
            Verdict::Listed { .. }
        ));
        // Host-agnostic entries hold on every host.
        assert!(matches!(
            decide(&l, &bad("www.test"), "GET", "/orders/3", 0),
            Verdict::Listed { .. }
        ));
    }

    #[test]
    fn original_request_from_gateway_headers() {
        let h = headers(&[
            ("x-original-uri", "/orders/7?x=1"),
            ("x-original-method", "get"),
        ]);
        assert_eq!(original(&h, "GET", "/"), ("GET".into(), "/orders/7".into()));
        let h = headers(&[("x-forwarded-uri", "/a#f"), ("x-forwarded-method", "POST")]);
        assert_eq!(original(&h, "GET", "/"), ("POST".into(), "/a".into()));
        // Envoy's ext_authz (HTTP) sends the original path and method as its own.
        assert_eq!(
            original(&headers(&[]), "DELETE", "/b"),
            ("DELETE".into(), "/b".into())
        );
    }

    #[test]
    fn listed_actor_on_listed_route_only_and_never_after_expiry() {
        let l = lists(Mode::Enforce);
        let bad = headers(&[("authorization", "Bearer bad")]);
        let good = headers(&[("authorization", "Bearer good")]);
        assert!(matches!(
            decide(&l, &bad, "GET", "/orders/12", 0),
            Verdict::Listed { .. }
        ));
        assert_eq!(decide(&l, &bad, "POST", "/orders/12", 0), Verdict::Allow);
        assert_eq!(decide(&l, &bad, "GET", "/public", 0), Verdict::Allow);
        assert_eq!(decide(&l, &good, "GET", "/orders/12", 0), Verdict::Allow);
        assert_eq!(
            decide(&l, &bad, "GET", "/orders/12", 10_000),
            Verdict::Allow
        );
        assert_eq!(
            decide(&l, &headers(&[]), "GET", "/orders/12", 0),
            Verdict::Allow
        );
        let key = headers(&[("x-api-key", "bad")]);
        assert!(matches!(
            decide(&l, &key, "GET", "/orders/1", 0),
            Verdict::Listed { .. }
        ));
        assert_eq!(
            decide(&lists(Mode::Off), &bad, "GET", "/orders/12", 0),
            Verdict::Allow
        );
    }
}
