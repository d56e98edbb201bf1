use std::io::Write as _;

use super::*;

#[test]
fn data1_validated_kinds_and_benign_look_alikes() {
    let body = br#"{"card":"5555-5555-5555-4444","ssn":"078-05-1120","iban":"GB82WEST12345698765432",
        "aws":"AKIAIOSFODNN7EXAMPLE","client_secret":"f3Kq9ZxV7mB2pL8sR4tW1yH6","key":"-----BEGIN RSA PRIVATE KEY-----"}"#;
    let kinds =
        data1_sensitive_in_response(&String::from_utf8_lossy(body)).expect("found")["kinds"]
            .clone();
    assert_eq!(
        kinds,
        json!([
            "aws_access_key",
            "card:mastercard",
            "high_entropy_secret",
            "iban",
            "private_key",
            "ssn"
        ])
    );
    // Order numbers failing Luhn, an IBAN with a bad check digit, a low-entropy "secret",
    // timestamps and prices.
    let benign = br#"{"order":"4111111111111112","iban":"GB00WEST12345698765432","password_hint":"aaaaaaaaaaaaaaaaaaaa",
        "ts":1763700000123,"price":"1299.00","phone":"+1 555-0123"}"#;
    assert_eq!(
        data1_sensitive_in_response(&String::from_utf8_lossy(benign)),
        None
    );
}

#[test]
fn cfg1_stack_traces_and_sql_errors_not_prose() {
    let cases: [(&[u8], &str); 4] = [
        (
            b"Traceback (most recent call last):\n  File \"app.py\", line 3",
            "python_traceback",
        ),
        (
            b"java.lang.NullPointerException\n\tat com.shop.Api.get(Api.java:42)\n",
            "java_stack_trace",
        ),
        (
            b"SQLSTATE[42000]: Syntax error or access violation",
            "sql_error",
        ),
        (
            b"Error: boom\n    at handler (/srv/app/index.js:10:5)",
            "node_stack_trace",
        ),
    ];
    for (body, kind) in cases {
        assert_eq!(
            cfg1_error_disclosure(&String::from_utf8_lossy(body)),
            Some(json!({ "kind": kind })),
            "{kind}"
        );
    }
    let prose = b"We traced the error back to the SQL team; at least it works now.";
    assert_eq!(cfg1_error_disclosure(&String::from_utf8_lossy(prose)), None);
}

#[test]
fn gzip_and_deflate_responses_are_inflated_even_when_truncated() {
    let plain = "card 4111 1111 1111 1111 in a compressed page ".repeat(20);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(plain.as_bytes()).expect("gzip");
    let gz = gz.finish().expect("gzip");
    let bodies = Bodies::from_raw(b"", &gz[..gz.len() - 8], Some("gzip"));
    assert!(String::from_utf8_lossy(&bodies.response).starts_with("card 4111"));
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(plain.as_bytes()).expect("zlib");
    let z = z.finish().expect("zlib");
    assert!(
        Bodies::from_raw(b"", &z, Some("deflate"))
            .response
            .starts_with(b"card 4111")
    );
}

#[test]
fn body_inputs_from_json_leaves_and_forms() {
    assert_eq!(
        body_inputs(br#"{"q":{"name":"x' OR '1'='1"},"tags":["a"],"n":3}"#),
        [
            ("body.q.name".to_owned(), "x' OR '1'='1".to_owned()),
            ("body.tags".to_owned(), "a".to_owned())
        ]
    );
    assert_eq!(
        body_inputs(b"user=a&next=..%2F..%2Fetc%2Fpasswd"),
        [
            ("body.user".to_owned(), "a".to_owned()),
            ("body.next".to_owned(), "../../etc/passwd".to_owned())
        ]
    );
    assert!(body_inputs(b"\x00\x01binary").is_empty());
    assert!(valid_iban("DE89370400440532013000"));
    assert!(!valid_iban("DE00370400440532013000"));
    assert!(entropy("f3Kq9ZxV7mB2pL8sR4tW1yH6") > 4.0 && entropy("aaaaaaaa") == 0.0);
}

#[test]
fn iban_candidates_match_the_word_pattern() {
    // The regex this scan replaced, as the reference.
    let re = regex::Regex::new(r"(?-u:\b)[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}(?-u:\b)").expect("re");
    let texts = [
        r#"{"iban":"DE89370400440532013000"}"#,
        "GB82WEST12345698765432 and FR1420041010050500013M02606.",
        "xDE89370400440532013000 DE89370400440532013000x DE89370400440532013000_",
        "DE8937040044053201300012345678901234567 DE893704004405 AB12CDEFGHIJKLM",
        "A1 AB1 AB12 ABCD12345678901234 é DE89370400440532013000é",
        "",
        "0123456789abcdef",
    ];
    for text in texts {
        let expected: Vec<&str> = re.find_iter(text).map(|m| m.as_str()).collect();
        let found: Vec<&str> = crate::classify::iban_candidates(text).collect();
        assert_eq!(found, expected, "{text}");
    }
}

#[test]
fn digit_rich_bodies_hold_no_card_or_iban() {
    let body = "0123456789abcdef".repeat(1024);
    assert_eq!(data1_sensitive_in_response(&body), None);
    assert!(crate::classify::digit_runs(&body).is_empty());
}
