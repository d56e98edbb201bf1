//! The kernel half as userspace sees it: loading the eBPF object (loader), kernel structure
//! offsets from BTF (offsets), capture filters in maps (filters), TLS libraries found and
//! probed (tls), records decoded from the ring buffer (decode) and recorded for replay
//! (recording), and the counters both halves keep (counters). Everything after `decode` is
//! plain Rust fed from here or from a recording.

pub mod counters;
pub mod decode;
pub mod filters;
pub mod loader;
pub mod offsets;
pub mod recording;
pub mod tls;
