//! The output stage: renders exchanges as JSON lines (schema.rs, redact.rs) and writes them to
//! the sink. Events leave the agent only through here.

pub mod redact;
pub mod schema;

use std::io::Write;

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("writing events to stdout failed (is the reader gone?): {0}")]
    Stdout(#[source] std::io::Error),
    #[error("serialising an event failed: {0}")]
    Json(#[from] serde_json::Error),
}

/// JSON lines on stdout, buffered; flushed after every batch so events are never held long.
pub struct StdoutSink {
    out: std::io::BufWriter<std::io::Stdout>,
    pub events_written: u64,
}

impl Default for StdoutSink {
    fn default() -> Self {
        Self {
            out: std::io::BufWriter::with_capacity(256 * 1024, std::io::stdout()),
            events_written: 0,
        }
    }
}

impl StdoutSink {
    pub fn write<T: serde::Serialize>(&mut self, event: &T) -> Result<(), OutputError> {
        serde_json::to_writer(&mut self.out, event)?;
        self.out.write_all(b"\n").map_err(OutputError::Stdout)?;
        self.events_written += 1;
        Ok(())
    }

    pub fn flush(&mut self) -> Result<(), OutputError> {
        self.out.flush().map_err(OutputError::Stdout)
    }
}
