//! HTTP parsing. `h1` turns one direction of a byte stream into message heads and body summaries;
//! `exchange` pairs requests with responses on a connection.

mod byte_queue;
pub mod exchange;
pub mod h1;
pub mod head;
