//! RFC 7541 Appendix C vectors, then what a late joiner must do: resolve what it saw inserted,
//! mark the rest unknown, never guess.

use super::*;

fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).expect("ascii"), 16).expect("hex"))
        .collect()
}

fn known(fields: &FieldList) -> Vec<(String, String)> {
    known_from(fields, 0)
}

fn known_from(fields: &FieldList, skip: usize) -> Vec<(String, String)> {
    fields
        .iter()
        .skip(skip)
        .map(|f| match f {
            Field::Known { name, value } => (
                String::from_utf8_lossy(name).into_owned(),
                String::from_utf8_lossy(value).into_owned(),
            ),
            Field::UnknownName { value } => ("?".into(), String::from_utf8_lossy(value).into()),
            Field::Unknown => ("?".into(), "?".into()),
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn decode(d: &mut Decoder, block: &str) -> Vec<(String, String)> {
    let mut out = FieldList::default();
    d.decode(&hex(block), &mut out).expect("decodes");
    known(&out)
}

const C3: [&str; 3] = [
    "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
    "8286 84be 5808 6e6f 2d63 6163 6865",
    "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
];

const C4: [&str; 3] = [
    "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
    "8286 84be 5886 a8eb 1064 9cbf",
    "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
];

fn requests() -> [Vec<(String, String)>; 3] {
    [
        pairs(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            (":authority", "www.example.com"),
        ]),
        pairs(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            (":authority", "www.example.com"),
            ("cache-control", "no-cache"),
        ]),
        pairs(&[
            (":method", "GET"),
            (":scheme", "https"),
            (":path", "/index.html"),
            (":authority", "www.example.com"),
            ("custom-key", "custom-value"),
        ]),
    ]
}

#[test]
fn rfc7541_c3_and_c4_requests() {
    for blocks in [C3, C4] {
        let mut d = Decoder::new(4096, 65536);
        for (block, want) in blocks.iter().zip(requests()) {
            assert_eq!(decode(&mut d, block), want);
        }
        assert_eq!(d.table_len(), 3);
        assert_eq!(d.size, 164);
    }
}

fn responses() -> [Vec<(String, String)>; 3] {
    [
        pairs(&[
            (":status", "302"),
            ("cache-control", "private"),
            ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
            ("location", "https://www.example.com"),
        ]),
        pairs(&[
            (":status", "307"),
            ("cache-control", "private"),
            ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
            ("location", "https://www.example.com"),
        ]),
        pairs(&[
            (":status", "200"),
            ("cache-control", "private"),
            ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
            ("location", "https://www.example.com"),
            ("content-encoding", "gzip"),
            (
                "set-cookie",
                "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
            ),
        ]),
    ]
}

#[test]
fn rfc7541_c5_and_c6_responses_with_eviction() {
    let c5 = [
        "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 \
         303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
        "4803 3330 37c1 c0bf",
        "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 \
         5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 \
         5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31",
    ];
    let c6 = [
        "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b \
         ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
        "4883 640e ffc1 c0bf",
        "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad \
         94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 \
         65c0 03ed 4ee5 b106 3d50 07",
    ];
    for blocks in [c5, c6] {
        let mut d = Decoder::new(256, 65536);
        let sizes = [222, 222, 215];
        for ((block, want), size) in blocks.iter().zip(responses()).zip(sizes) {
            assert_eq!(decode(&mut d, block), want);
            assert_eq!(d.size, size);
        }
    }
}

#[test]
fn late_joiner_resolves_new_entries_and_marks_old_ones_unknown() {
    // Joined after the first request: its :authority insertion was never seen.
    let mut d = Decoder::new(4096, 65536);
    let mut out = FieldList::default();
    let stats = d.decode(&hex(C3[1]), &mut out).expect("decodes");
    assert_eq!(stats.unsynced_fields, 1);
    assert_eq!(out.get(3), Some(Field::Unknown));
    assert_eq!(known_from(&out, 4), pairs(&[("cache-control", "no-cache")]));
    // The third request refers to index 63 (bf: the :authority never seen): still unknown;
    // its new literal resolves.
    out.clear();
    d.decode(&hex(C3[2]), &mut out).expect("decodes");
    assert_eq!(out.get(3), Some(Field::Unknown));
    assert_eq!(
        known_from(&out, 4),
        pairs(&[("custom-key", "custom-value")])
    );
}

#[test]
fn forget_then_heal() {
    let mut d = Decoder::new(4096, 65536);
    decode(&mut d, C3[0]);
    d.forget();
    let mut out = FieldList::default();
    d.decode(&hex(C3[1]), &mut out).expect("decodes");
    assert_eq!(out.get(3), Some(Field::Unknown));
    // The newly inserted cache-control resolves on the next reference (index 62).
    out.clear();
    d.decode(&[0xbe], &mut out).expect("decodes");
    assert_eq!(known(&out), pairs(&[("cache-control", "no-cache")]));
}

#[test]
fn literal_with_unknown_name_index() {
    // Literal with incremental indexing, name index 62 (never seen), value "v".
    let mut d = Decoder::new(4096, 65536);
    let mut out = FieldList::default();
    d.decode(&[0x40 | 0x3e, 0x01, b'v'], &mut out)
        .expect("decodes");
    assert_eq!(out.get(0), Some(Field::UnknownName { value: b"v" }));
    assert_eq!(out.len(), 1);
    // It was inserted all the same: index 62 now resolves to it.
    out.clear();
    d.decode(&[0xbe], &mut out).expect("decodes");
    assert_eq!(out.get(0), Some(Field::UnknownName { value: b"v" }));
    assert_eq!(out.len(), 1);
}

#[test]
fn bombs_and_garbage_are_bounded() {
    // One 100-byte literal inserted, then referenced 10,000 times: the list bound drops the
    // repeats but the block still decodes to its end.
    let mut block = vec![0x40, 0x01, b'x', 100];
    block.extend([b'y'; 100]);
    block.extend(std::iter::repeat_n(0xbe, 10_000));
    let mut d = Decoder::new(4096, 16 * 1024);
    let mut out = FieldList::default();
    let stats = d.decode(&block, &mut out).expect("decodes");
    assert!(stats.dropped_fields > 9_000, "{stats:?}");
    assert!(out.len() < 200);
    // Index 0, truncated strings and runaway integers are errors, not panics.
    for bad in [
        &[0x80][..],
        &[0x40, 0x05, b'a'],
        &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
    ] {
        let mut d = Decoder::new(4096, 65536);
        assert!(d.decode(bad, &mut FieldList::default()).is_err(), "{bad:?}");
    }
}

#[test]
fn cached_huffman_strings_decode_the_same() {
    let mut d = Decoder::new(4096, 65536);
    let first = decode(&mut d, C4[0]);
    assert_eq!(d.huffman_cache.map.len(), 1);
    // The same literal again comes from the cache, byte for byte.
    assert_eq!(decode(&mut d, C4[0]), first);
    assert_eq!(d.huffman_cache.map.len(), 1);
}
