#![no_std]
//! Empty library target: it lets `agent` name this crate as a build-dependency so cargo rebuilds
//! the agent when the eBPF sources change. The programs live in the `agent-ebpf` binary.
