//! Enrichment: what the exchange's process is (exe, from /proc at exec and first sight) and
//! where it runs (container from the cgroup path, Kubernetes pod from a list+watch of this
//! node's pods). Bounded tables; the event builder reads them per exchange.

pub mod process;
pub mod workload;
