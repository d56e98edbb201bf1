//! The enforcement path on attacker bytes: the kernel's head scanner (the same code the eBPF
//! program runs), checked against the agent's own derivation of the keys wherever httparse
//! reads the head the same way; and kernel verdict records decoded and turned into evidence.
#![no_main]

use agent::{
    detect::route,
    enforce::{EnforceConfig, Enforcer, Mode, VerdictContext, host_route_key, route_key},
    kernel::{
        control::{ControlError, VerdictMaps},
        decode::{Record, decode},
    },
};
use agent_common::enforce::{
    ActorEntry, ClientKey, EnforceSettings, GateKey, HeadScan, RouteEntry, SCAN_COMPLETE, counter,
    credential_key, credential_of,
};
use libfuzzer_sys::fuzz_target;

const KEY: [u64; 2] = [0x0123_4567_89ab_cdef, 0x0fed_cba9_8765_4321];

struct NoMaps;

impl VerdictMaps for NoMaps {
    fn set_settings(&mut self, _: &EnforceSettings) -> Result<(), ControlError> {
        Ok(())
    }
    fn put_actor(&mut self, _: u64, _: &ActorEntry) -> Result<(), ControlError> {
        Ok(())
    }
    fn remove_actor(&mut self, _: u64) -> Result<(), ControlError> {
        Ok(())
    }
    fn put_route(&mut self, _: u64, _: &RouteEntry) -> Result<(), ControlError> {
        Ok(())
    }
    fn remove_route(&mut self, _: u64) -> Result<(), ControlError> {
        Ok(())
    }
    fn put_client(&mut self, _: &ClientKey, _: &ActorEntry) -> Result<(), ControlError> {
        Ok(())
    }
    fn remove_client(&mut self, _: &ClientKey) -> Result<(), ControlError> {
        Ok(())
    }
    fn remove_gate(&mut self, _: &GateKey) -> Result<(), ControlError> {
        Ok(())
    }
    fn counters(&self) -> [u64; counter::COUNT as usize] {
        [0; counter::COUNT as usize]
    }
}

/// (route key, route key on the request's host, token key) as the agent derives them.
fn agent_keys(data: &[u8]) -> Option<(u64, Option<u64>, Option<u64>)> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    if !matches!(req.parse(data), Ok(httparse::Status::Complete(_))) {
        return None;
    }
    let (method, target) = (req.method?, req.path?);
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    if !path.starts_with('/') || !path.is_ascii() {
        return None;
    }
    let value = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    let token = match value("authorization") {
        Some(v) => credential_of("authorization", v),
        None => value("x-api-key").and_then(|v| credential_of("x-api-key", v)),
    }
    .map(|c| credential_key(KEY, c));
    let (template, _) = route::template(path);
    let host = value("host").map_or(Some(""), |v| std::str::from_utf8(v).ok())?;
    Some((
        route_key(method, &template),
        host_route_key(host, method, &template),
        token,
    ))
}

fuzz_target!(|data: &[u8]| {
    let mut scan = HeadScan::new(KEY);
    for c in data {
        scan.step(*c);
    }
    // The kernel scans a head in pieces (split reads, scan windows) from saved state: any cut
    // gives the same result.
    if let Some(cut) = data.first().map(|c| usize::from(*c) % (data.len() + 1)) {
        let mut pieces = HeadScan::new(KEY);
        for c in data.get(..cut).unwrap_or_default() {
            pieces.step(*c);
        }
        let saved = pieces;
        let mut resumed = saved;
        for c in data.get(cut..).unwrap_or_default() {
            resumed.step(*c);
        }
        assert_eq!(resumed, scan);
    }
    // httparse tolerates what the scanner refuses (and the reverse is fail-open by design);
    // where both read a whole head whose lines are plain, they must agree.
    let plain = !data.iter().any(|c| *c == b'\t' || *c >= 0x80 || *c == 0);
    if scan.done == SCAN_COMPLETE
        && plain
        && let Some((route, on_host, token)) = agent_keys(data)
    {
        assert_eq!(scan.route_key, route, "route key of {:?}", String::from_utf8_lossy(data));
        assert_eq!(
            scan.host_route_key(),
            on_host,
            "host route key of {:?}",
            String::from_utf8_lossy(data)
        );
        assert_eq!(scan.token(), token, "token of {:?}", String::from_utf8_lossy(data));
    }
    if let Ok(Record::Verdict(verdict)) = decode(data) {
        let config = EnforceConfig {
            mode: Mode::Enforce,
            ..EnforceConfig::default()
        };
        if let Ok(mut enforcer) = Enforcer::new(config, NoMaps, KEY) {
            let ctx = VerdictContext {
                host: "fuzz",
                exe: None,
                monotonic_to_unix_ns: 0,
            };
            let event = enforcer.on_verdict(
                &verdict,
                &ctx,
                |_| Err(agent::enforce::reset::ResetError::NoTuple),
                || 0,
            );
            let _ = serde_json::to_string(&event);
            let _ = agent::output::formats::enforcement_ocsf(&event, 0);
            let _ = agent::output::formats::enforcement_ecs(&event);
        }
    }
});
