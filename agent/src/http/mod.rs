//! HTTP parsing. `h1` turns one direction of a byte stream into message heads and body summaries;
//! `exchange` pairs requests with responses on a connection.

pub mod exchange;
pub mod h1;
