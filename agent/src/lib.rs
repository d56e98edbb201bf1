//! cleartap's userspace agent, as a library: stages along the data flow
//! reader → decode → conn → http → output, wired together by [`run`].
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
pub mod ca_file;
pub mod classify;
pub mod config;
pub mod config_file;
pub mod conn;
pub mod contain;
pub mod decode;
pub mod detect;
pub mod event;
pub mod filters;
pub mod install;
pub mod kernel_offsets;
pub mod loader;
pub mod metrics;
pub mod output;
pub mod pipeline;
pub mod probes;
pub mod process;
pub mod protocol;
pub mod reader;
pub mod recording;
pub mod replay;
pub mod stats;
pub mod token_key;
pub mod workload;
