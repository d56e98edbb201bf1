//! GraphQL documents from the network: the nesting scan and the parser behind it must never
//! panic nor recurse without bound, whatever the text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Some(ops) = agent::detect::graphql::operations(text)
    {
        for op in ops {
            assert!(op.depth <= text.len());
        }
    }
});
