//! The kernel half as userspace sees it: loading the eBPF object (loader), kernel structure
//! offsets from BTF (offsets), capture filters in maps (filters), TLS libraries found and
//! probed (tls), records decoded from the ring buffer (decode) and recorded for replay
//! (recording), the counters both halves keep (counters), and the one owner of runtime writes
//! to the verdict maps and the egress gate (control). Everything after `decode` is
//! plain Rust fed from here or from a recording.

pub mod control;
pub mod counters;
pub mod decode;
pub mod filters;
pub mod loader;
pub mod offsets;
pub mod recording;
pub mod tls;
