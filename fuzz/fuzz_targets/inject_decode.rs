//! INJ-3's decoding of attacker-controlled values (URL decoding twice, `%uXXXX`, HTML entities)
//! must never panic, and never grow a value by more than the bound it works within; nor may the
//! value checks of INJ-1's SQL structure and INJ-2's system injection, nor the masked fragment
//! injection evidence shows. The rules themselves run over hostile requests in `exchange_path`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let decoded = agent::detect::inject::normalise(text);
        // Decoding only shrinks escapes; lower-casing may grow a char to at most 3× its bytes.
        assert!(decoded.len() <= 3 * text.len().min(8192) + 8);
        let _ = agent::detect::sql::structure(text);
        let _ = agent::detect::system_inject::classify(text);
        // Masking swaps a run for `[REDACTED]`: a 9-digit SSN grows by one character.
        let fragment = agent::classify::redact::fragment(text);
        let bound = agent::classify::redact::FRAGMENT_CHARS;
        assert!(fragment.chars().count() <= bound + bound / 9 + 1);
    }
});
