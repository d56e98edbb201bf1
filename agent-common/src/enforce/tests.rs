extern crate std;

use std::{format, string::String, vec::Vec};

use siphasher::sip::SipHasher24;

use super::*;

const KEY: [u64; 2] = [0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908];

fn scan(head: &[u8]) -> HeadScan {
    let mut s = HeadScan::new(KEY);
    for c in head {
        s.step(*c);
    }
    s
}

fn reference(bytes: &[u8]) -> u64 {
    SipHasher24::new_with_keys(KEY[0], KEY[1]).hash(bytes)
}

/// The route key of `method` + template, as the agent builds it.
fn route(method: &str, template: &str) -> u64 {
    template
        .split('/')
        .fold(RouteKey::method(method.as_bytes()), |k, s| {
            k.segment(s.as_bytes())
        })
        .get()
}

#[test]
fn byte_at_a_time_siphash_is_siphash_2_4() {
    for len in 0..70usize {
        let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        assert_eq!(
            credential_key(KEY, &bytes),
            reference(&bytes),
            "length {len}"
        );
    }
    // The paper's test vector: key 00..0f, message 00..0e.
    let message: Vec<u8> = (0u8..15).collect();
    assert_eq!(credential_key(KEY, &message), 0xa129_ca61_49be_45e5);
}

#[test]
fn bearer_token_and_route_of_a_plain_request() {
    let s =
        scan(b"GET /api/items/42?x=1 HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer tok-B\r\n\r\n");
    assert_eq!(s.done, SCAN_COMPLETE);
    assert_eq!(s.credential(), CREDENTIAL_AUTHORIZATION);
    assert_eq!(s.token(), Some(reference(b"tok-B")));
    assert_eq!(s.route_key, route("GET", "/api/items/{id}"));
    assert_ne!(s.route_key, route("POST", "/api/items/{id}"));
    assert_ne!(s.route_key, route("GET", "/api/items/42"));
}

#[test]
fn parameter_kinds_follow_the_inventory_templates() {
    let cases = [
        ("/users/123", "/users/{id}"),
        ("/o/3f2a1b7c-9d8e-4f60-a1b2-c3d4e5f60718/x", "/o/{uuid}/x"),
        ("/blob/deadbeef01", "/blob/{hex}"),
        ("/ord/ord_8f7d6c5b", "/ord/{token}"),
        ("/report-2024/page2", "/report-2024/page2"),
        ("/v1/secret", "/v1/secret"),
        ("/", "/"),
        ("/a//b/", "/a//b/"),
        ("/deadbeef", "/deadbeef"),
    ];
    for (path, template) in cases {
        let s = scan(format!("GET {path} HTTP/1.1\r\n\r\n").as_bytes());
        assert_eq!(s.done, SCAN_COMPLETE, "{path}");
        assert_eq!(s.route_key, route("GET", template), "{path} → {template}");
        assert_eq!(s.token(), None);
    }
}

#[test]
fn api_key_counts_unless_authorization_is_present() {
    let s = scan(b"POST /x HTTP/1.1\r\nX-API-Key:   k1 \r\n\r\n");
    assert_eq!(s.credential(), CREDENTIAL_API_KEY);
    assert_eq!(s.token(), Some(reference(b"k1")));
    let s = scan(b"POST /x HTTP/1.1\r\nx-api-key: k1\r\nauthorization: Basic dXNlcg==\r\n\r\n");
    assert_eq!(s.token(), Some(reference(b"dXNlcg==")));
    let s = scan(b"POST /x HTTP/1.1\r\nauthorization: Basic dXNlcg==\r\nx-api-key: k1\r\n\r\n");
    assert_eq!(s.token(), Some(reference(b"dXNlcg==")));
}

#[test]
fn a_shapeless_authorization_still_hides_later_credentials() {
    let s =
        scan(b"GET / HTTP/1.1\nauthorization: Basic=\nAuthorization: Bearer b\nX-Api-Key: k\n\n");
    assert_eq!(s.token(), None);
}

#[test]
fn the_first_authorization_counts() {
    let s = scan(
        b"GET / HTTP/1.1\r\nAuthorization: Bearer first\r\nAuthorization: Bearer second\r\n\r\n",
    );
    assert_eq!(s.token(), Some(reference(b"first")));
}

#[test]
fn lookalike_headers_and_bare_newlines() {
    let s = scan(b"GET / HTTP/1.1\nX-Authorization: Bearer nope\nAuthorizationX: Bearer no\nauthorization:Bearer  yes\n\n");
    assert_eq!(s.done, SCAN_COMPLETE);
    assert_eq!(s.token(), Some(reference(b"yes")));
}

#[test]
fn values_without_scheme_and_credentials_give_no_token() {
    for head in [
        &b"GET / HTTP/1.1\r\nAuthorization: abc\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nAuthorization: Bearer \r\n\r\n",
        b"GET / HTTP/1.1\r\nAuthorization: ThisSchemeIsFarTooLong abc\r\n\r\n",
    ] {
        let s = scan(head);
        assert_eq!(s.done, SCAN_COMPLETE);
        assert_eq!(s.token(), None, "{:?}", String::from_utf8_lossy(head));
    }
}

#[test]
fn what_is_not_an_origin_form_request_is_left_alone() {
    for head in [
        &b"HTTP/1.1 200 OK\r\n\r\n"[..],
        b"GET http://a/b HTTP/1.1\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\n\r\n",
        b"get / HTTP/1.1\r\n\r\n",
        b"\x16\x03\x01\x02\x00",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"GET /a\r\n",
    ] {
        assert_eq!(
            scan(head).done,
            SCAN_NOT_HTTP,
            "{:?}",
            String::from_utf8_lossy(head)
        );
    }
    // A head cut before its end is still running: the kernel counts it as unparsed.
    assert_eq!(
        scan(b"GET /a HTTP/1.1\r\nAuthorization: Bearer x").done,
        SCAN_RUNNING
    );
}

#[test]
fn agent_side_credential_matches_the_kernel_rule() {
    assert_eq!(
        credential_of("authorization", b"Bearer abc"),
        Some(&b"abc"[..])
    );
    assert_eq!(
        credential_of("authorization", b"Bearer   abc def"),
        Some(&b"abc"[..])
    );
    assert_eq!(credential_of("authorization", b"abc"), None);
    assert_eq!(credential_of("x-api-key", b"  k1 "), Some(&b"k1"[..]));
    assert_eq!(credential_of("cookie", b"a=b"), None);
}

#[test]
fn random_bytes_never_panic_and_always_stay_in_known_states() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..2000 {
        let mut s = HeadScan::new(KEY);
        for _ in 0..300 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let c = match x % 8 {
                0 => b'\r',
                1 => b'\n',
                2 => b' ',
                3 => b'/',
                _ => (x >> 8) as u8,
            };
            s.step(c);
            assert!(s.done <= SCAN_NOT_HTTP && s.state <= S_HOST);
        }
    }
}

#[test]
fn host_keys_name_the_virtual_host_without_its_port() {
    let secret = RouteKey::method(b"GET").segment(b"").segment(b"secret");
    let of = |head: &[u8]| scan(head).host_route_key();
    let api = Some(secret.on_host(b"api.test").get());
    assert_eq!(of(b"GET /secret HTTP/1.1\r\nHost: api.test\r\n\r\n"), api);
    assert_eq!(
        of(b"GET /secret HTTP/1.1\r\nhost:API.Test:8443\r\n\r\n"),
        api
    );
    assert_eq!(
        of(b"GET /secret HTTP/1.1\r\nHOST:  api.test \r\nHost: b\r\n\r\n"),
        api
    );
    assert_ne!(of(b"GET /secret HTTP/1.1\r\nHost: www.test\r\n\r\n"), api);
    assert_ne!(
        api,
        Some(secret.get()),
        "host-specific and host-agnostic keys differ"
    );
    // No Host: the empty host's key, as the agent lists a Host-less request's route.
    assert_eq!(
        of(b"GET /secret HTTP/1.0\r\nAccept: */*\r\n\r\n"),
        Some(secret.on_host(b"").get())
    );
    let v6 = Some(secret.on_host(b"[::1]").get());
    assert_eq!(of(b"GET /secret HTTP/1.1\r\nHost: [::1]:443\r\n\r\n"), v6);
    assert_eq!(host_of(b" [::1]:443"), Some(&b"[::1]"[..]));
    assert_eq!(host_of(b"api.test:8443"), Some(&b"api.test"[..]));
    assert_eq!(host_of(b""), Some(&b""[..]));
    // Lookalike names are other headers; the scan still finds the credential after them.
    let s = scan(
        b"GET /secret HTTP/1.1\r\nHostname: x\r\nX-Host: y\r\nAuthorization: Bearer t\r\n\r\n",
    );
    assert_eq!(s.host_route_key(), Some(secret.on_host(b"").get()));
    assert_eq!(s.token(), Some(reference(b"t")));
    // Too long to be a host name: no host key, and the agent agrees.
    let long = [b'a'; 256];
    let mut head = b"GET /secret HTTP/1.1\r\nHost: ".to_vec();
    head.extend_from_slice(&long);
    head.extend_from_slice(b"\r\n\r\n");
    assert_eq!(scan(&head).done, SCAN_COMPLETE);
    assert_eq!(scan(&head).host_route_key(), None);
    assert_eq!(host_of(&long), None);
    assert_eq!(host_of(&long[..255]).map(<[u8]>::len), Some(255));
}

#[test]
fn a_head_scanned_in_pieces_gives_the_keys_of_the_whole() {
    let head: &[u8] =
        b"POST /orders/42 HTTP/1.1\r\nHost: shop.test\r\nX-Api-Key: k-77\r\nContent-Length: 0\r\n\r\n";
    let whole = scan(head);
    for cut in 1..head.len() {
        let (a, b) = head.split_at(cut);
        // What the kernel saves between two reads is the whole state: a copy goes on.
        let saved = scan(a);
        assert_eq!(saved.done, SCAN_RUNNING, "cut {cut}");
        let mut s = saved;
        for c in b {
            s.step(*c);
        }
        assert_eq!(s, whole, "cut {cut}");
    }
}
