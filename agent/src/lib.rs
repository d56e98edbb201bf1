//! cleartap's userspace agent, as a library, one module per stage along the data flow:
//! kernel (load, probe, decode records) → conn (reassembly) → protocol (HTTP/1 parsing and
//! pairing) → event (the typed, redacted exchange, with enrich's process and workload) →
//! detect (typed findings) → output (renderings and sinks); classify holds what redaction and
//! detection share; app wires the stages into the agent (start-up, event loop, metrics).
//! docs/ARCHITECTURE.md describes each stage's interface.
//!
//! Every byte this library handles comes from the kernel or the network and is attacker-chosen:
//! the constructs that can panic on input are denied outside tests. Where an invariant makes
//! one safe, it is allowed locally with the reason.
#![cfg_attr(
    not(test),
    deny(
        clippy::string_slice,
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]
pub mod app;
pub mod classify;
pub mod config;
pub mod conn;
pub mod contain;
pub mod detect;
pub mod enforce;
pub mod enrich;
pub mod event;
pub mod kernel;
pub mod output;
pub mod protocol;
