//! What every protocol parser produces, whatever the wire format: messages (a head and a body
//! summary) paired into exchanges. The head keeps its bytes and spans into them.

use super::head::Head;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BodySummary {
    /// Decoded body bytes (after de-chunking), including bytes lost to capture gaps.
    pub size: u64,
    pub prefix: Vec<u8>,
    /// Bytes of this message that were not captured.
    pub missing_bytes: u64,
    pub end_ns: u64,
    /// gRPC-Web over HTTP/1: the body's message framing, counted as the body streamed by.
    pub grpc: Option<Box<super::h2::grpc::MessageCounter>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub head: Head,
    /// `None` while the body is still arriving.
    pub body: Option<BodySummary>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub request: Option<Message>,
    pub response: Option<Message>,
    /// HTTP/2: the stream the exchange was. Boxed: HTTP/1 pays one word.
    pub http2: Option<Box<super::h2::StreamInfo>>,
    /// A gRPC call (HTTP/2, or gRPC-Web over either version).
    pub grpc: Option<Box<super::h2::GrpcCall>>,
}
