//! Classifiers shared by redaction (what must never be written) and detection (what is worth a
//! finding): payment cards (issuer prefix + Luhn), US SSNs, IBANs (mod-97), Shannon entropy,
//! bearer JWTs, and the keyed redaction tags. Nothing here knows about events or rules, so both
//! `event` and `detect` depend on it and not on each other.

pub mod jwt;
pub mod memo;
pub mod redact;

/// Bytes as text, invalid UTF-8 replaced by U+FFFD — as `String::from_utf8_lossy`, but valid
/// text (nearly all of it, and mostly ASCII) is checked by `str::from_utf8`, which reads ASCII a
/// word at a time, where the lossy iterator goes byte by byte.
pub fn text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(valid) => std::borrow::Cow::Borrowed(valid),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// A regex from a pattern written in this source. Every such pattern is compiled by the unit
/// tests of its module, so a typo fails the tests, never the agent.
pub(crate) fn static_regex(pattern: &str) -> regex::Regex {
    #[allow(clippy::expect_used)] // constant pattern, compiled by the tests
    regex::Regex::new(pattern).expect("static regex")
}

/// Luhn check of a digit string (non-digits make it fail).
pub fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let Some(mut n) = d.checked_sub(b'0').map(u32::from).filter(|n| *n <= 9) else {
            return false;
        };
        if i % 2 == 1 {
            n *= 2;
            if n > 9 {
                n -= 9;
            }
        }
        sum += n;
    }
    sum.is_multiple_of(10)
}

/// The number formed by the first `n` digits (0 when there are fewer).
fn leading(digits: &[u8], n: usize) -> u32 {
    digits.get(..n).map_or(0, |d| {
        d.iter()
            .fold(0u32, |acc, c| acc * 10 + u32::from(c.wrapping_sub(b'0')))
    })
}

/// A payment card number: 13-19 digits (spaces/dashes allowed between), a known issuer prefix,
/// Luhn-valid. Returns the brand.
pub fn card_brand(candidate: &str) -> Option<&'static str> {
    // On the stack: this runs for every digit run of every response body.
    let mut buffer = [0u8; 19];
    let mut count = 0usize;
    for c in candidate.bytes().filter(u8::is_ascii_digit) {
        *buffer.get_mut(count)? = c;
        count += 1;
    }
    let digits = buffer.get(..count)?;
    if !(13..=19).contains(&digits.len()) || !luhn(digits) {
        return None;
    }
    match digits.first()? {
        b'4' => Some("visa"),
        b'5' if (51..=55).contains(&leading(digits, 2)) => Some("mastercard"),
        b'2' if (2221..=2720).contains(&leading(digits, 4)) => Some("mastercard"),
        b'3' if matches!(leading(digits, 2), 34 | 37) => Some("amex"),
        b'6' if leading(digits, 4) == 6011 || leading(digits, 2) == 65 => Some("discover"),
        _ => None,
    }
}

/// A US SSN `AAA-GG-SSSS` with valid area, group and serial.
pub fn valid_ssn(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = b.get(r)?;
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| leading(part, part.len()))
    };
    if b.len() != 11 || b.get(3) != Some(&b'-') || b.get(6) != Some(&b'-') {
        return false;
    }
    match (digits(0..3), digits(4..6), digits(7..11)) {
        (Some(area), Some(group), Some(serial)) => {
            area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
        }
        _ => false,
    }
}

/// Whether `bytes` holds an ASCII digit. Bodies the rules scan are mostly digit-free (a 4 KiB
/// tap of text or markup): an OR over each 64-byte block compiles to vector compares, where
/// `any` took ~7 instructions a byte; a digit-rich body stops at its first block.
pub fn has_ascii_digit(bytes: &[u8]) -> bool {
    bytes.chunks(64).any(|block| {
        block
            .iter()
            .fold(false, |seen, b| seen | b.is_ascii_digit())
    })
}

/// Runs of digits (with single spaces/dashes inside) with as many digits as a card number
/// (13-19) or an SSN (9, written `AAA-GG-SSSS`), as sub-slices of `text` (ASCII boundaries, so
/// always valid `str` slices). Other runs (IDs, timestamps, prices) are never returned: the
/// checks behind would refuse them anyway, and digit-rich bodies have thousands.
pub fn digit_runs(text: &str) -> Vec<&str> {
    let b = text.as_bytes();
    let digit_at = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    let mut runs = Vec::new();
    let mut i = 0;
    // Jump to the next digit in one tight scan (most bytes of a body are not digits).
    // Digits are common and close together: a plain scan beats the block one here.
    while let Some(skip) = b
        .get(i..)
        .and_then(|rest| rest.iter().position(u8::is_ascii_digit))
    {
        i += skip;
        let start = i;
        let mut end;
        let mut digits = 0usize;
        loop {
            // A stretch of digits, then at most one joiner followed by a digit.
            let stretch = b.get(i..).map_or(0, |rest| {
                rest.iter().take_while(|c| c.is_ascii_digit()).count()
            });
            i += stretch;
            digits += stretch;
            end = i;
            match b.get(i) {
                Some(b' ' | b'-') if digit_at(i + 1) => i += 1,
                _ => break,
            }
        }
        let shaped = (13..=19).contains(&digits) || (digits == 9 && end - start == 11);
        // Both ends are at ASCII digits, hence char boundaries: `get` never fails here.
        if shaped && let Some(run) = text.get(start..end) {
            runs.push(run);
        }
    }
    runs
}

/// Index of the first byte at or after `from` that `wanted` accepts. Whole 32-byte blocks are
/// tested without an early exit, which the compiler turns into vector code: bodies are mostly
/// bytes the scans skip.
fn next_byte(b: &[u8], from: usize, wanted: impl Fn(u8) -> bool) -> Option<usize> {
    let rest = b.get(from..)?;
    let mut blocks = rest.chunks_exact(32);
    let mut at = from;
    for block in blocks.by_ref() {
        if block.iter().fold(false, |hit, &c| hit | wanted(c)) {
            return block.iter().position(|&c| wanted(c)).map(|p| at + p);
        }
        at += 32;
    }
    blocks
        .remainder()
        .iter()
        .position(|&c| wanted(c))
        .map(|p| at + p)
}

/// Words shaped like an IBAN (what `\b[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}\b` matches, ASCII word
/// boundaries), found by jumping between uppercase letters: a regex automaton walked every byte
/// of every body (27 µs on 16 KiB), this skips bodies without capitals at memchr-like speed.
pub fn iban_candidates(text: &str) -> impl Iterator<Item = &str> {
    let b = text.as_bytes();
    let word = |i: usize| {
        b.get(i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
    };
    let mut i = 0usize;
    std::iter::from_fn(move || {
        while let Some(start) = next_byte(b, i, |c| c.is_ascii_uppercase()) {
            let run = b
                .get(start..)?
                .iter()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
                .count();
            let end = start + run;
            i = end.max(start + 1);
            let shaped = (start == 0 || !word(start - 1))
                && !word(end)
                && (15..=34).contains(&run)
                && b.get(start + 1).is_some_and(u8::is_ascii_uppercase)
                && b.get(start + 2..start + 4)
                    .is_some_and(|d| d.iter().all(u8::is_ascii_digit));
            if shaped {
                // ASCII bounds: always a valid `str` slice.
                return text.get(start..end);
            }
        }
        None
    })
}

/// IBAN with a valid mod-97 check.
pub fn valid_iban(s: &str) -> bool {
    let b = s.as_bytes();
    let (Some(country), Some(check), Some(rest)) = (b.get(..2), b.get(2..4), b.get(4..)) else {
        return false;
    };
    if !(15..=34).contains(&b.len())
        || !country.iter().all(u8::is_ascii_uppercase)
        || !check.iter().all(u8::is_ascii_digit)
    {
        return false;
    }
    let mut remainder = 0u32;
    for &c in rest.iter().chain(country).chain(check) {
        remainder = match c {
            b'0'..=b'9' => (remainder * 10 + u32::from(c - b'0')) % 97,
            b'A'..=b'Z' => (remainder * 100 + u32::from(c - b'A') + 10) % 97,
            _ => return false,
        };
    }
    remainder == 1
}

/// Shannon entropy, bits per byte.
pub fn entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        if let Some(c) = counts.get_mut(usize::from(b)) {
            *c += 1;
        }
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = f64::from(*c) / n;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_ascii_digit_agrees_with_a_byte_scan_at_every_position_and_length() {
        for len in [0usize, 1, 63, 64, 65, 130, 4096] {
            let clean = vec![b'x'; len];
            assert!(!has_ascii_digit(&clean));
            for at in (0..len).step_by(7).chain(len.checked_sub(1)) {
                for digit in [b'0', b'9'] {
                    let mut with = clean.clone();
                    with[at] = digit;
                    assert!(has_ascii_digit(&with), "digit at {at} of {len}");
                }
                // The bytes either side of the digit range are not digits.
                let mut near = clean.clone();
                near[at] = if at % 2 == 0 { b'/' } else { b':' };
                assert!(!has_ascii_digit(&near));
            }
        }
        assert!(!has_ascii_digit("é€😀".as_bytes()));
    }

    #[test]
    fn luhn_and_brands() {
        assert!(luhn(b"79927398713"));
        assert!(!luhn(b"79927398710"));
        assert!(!luhn(b"7992739871x"));
        assert_eq!(card_brand("4111 1111 1111 1111"), Some("visa"));
        assert_eq!(card_brand("5555 5555 5555 4444"), Some("mastercard"));
        assert_eq!(card_brand("378282246310005"), Some("amex"));
        assert_eq!(card_brand("1234567812345670"), None);
    }

    #[test]
    fn ssn_and_runs() {
        assert!(valid_ssn("078-05-1120"));
        assert!(!valid_ssn("000-05-1120") && !valid_ssn("078-05-112é") && !valid_ssn(""));
        assert_eq!(
            digit_runs("card 4111 1111 1111 1111, id 12, ssn 078-05-1120é"),
            ["4111 1111 1111 1111", "078-05-1120"]
        );
        assert!(digit_runs("é1é2é").is_empty());
    }

    #[test]
    fn iban_and_entropy() {
        assert!(valid_iban("DE89370400440532013000"));
        assert!(!valid_iban("DE00370400440532013000"));
        assert!(!valid_iban("DEéé370400440532013000"));
        assert!(entropy("f3Kq9ZxV7mB2pL8sR4tW1yH6") > 4.0 && entropy("aaaaaaaa") == 0.0);
    }
}
