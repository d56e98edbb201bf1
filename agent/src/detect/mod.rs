//! Detections: typed exchanges in, typed findings out (schema `cleartap.finding/1`). Rules read
//! the typed, redacted exchange — the record the sinks render and `cleartap replay` reads back
//! — so replay over saved events gives what the live agent gave. Server-side exchanges are
//! judged (the API this node serves); a client's copy of the same exchange is not judged twice.

pub mod baseline;
pub mod catalogue;
mod clean_values;
mod config;
pub mod content;
pub mod corroborate;
mod engine;
pub mod finding;
pub mod graphql;
pub mod inject;
pub mod inputs;
pub mod inventory;
pub mod multipart;
pub mod route;
pub mod rules;
pub mod shape;
pub mod specs;
pub mod sql;
pub mod system_inject;
#[cfg(test)]
pub(crate) mod test_events;
pub mod view;
pub mod windows;

pub use catalogue::{CATALOGUE, RuleId, RuleInfo};
pub use config::DetectConfig;
pub use engine::{DetectStats, Engine, ListChange, RequestVerdict};
pub use finding::Finding;
