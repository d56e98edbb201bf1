//! The fields of a `multipart/form-data` request body, as injection rules read them: each text
//! part as `body.multipart.NAME`, each file part's file name as `body.multipart.NAME.filename`
//! (a traversal in an upload's name is a classic), never a file's bytes. Parsed by `multer`
//! from the tapped prefix: the parts before the tap's end are read, a part it cut is read as
//! far as it goes, and a body that is not multipart yields nothing.

use std::{
    future::Future,
    pin::pin,
    task::{Context, Poll, Waker},
};

use bytes::Bytes;

/// Parts read per body (the tap bounds the body already).
const MAX_PARTS: usize = 64;
/// Bytes of one text part kept.
const MAX_PART_BYTES: usize = 8192;

/// The boundary a body starts with (`--BOUNDARY\r\n`), as multipart bodies do; the request's
/// Content-Type says the same, but the body alone is what the rules get.
fn boundary(body: &[u8]) -> Option<&str> {
    let rest = body.strip_prefix(b"--")?;
    let end = rest.windows(2).position(|w| w == b"\r\n")?;
    let boundary = std::str::from_utf8(rest.get(..end)?).ok()?;
    // RFC 2046: 1–70 characters from a restricted set, no trailing space.
    (!boundary.is_empty()
        && boundary.len() <= 70
        && boundary
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(&b)))
    .then_some(boundary)
}

/// Runs a future whose input is all in memory: multer never waits on this stream, so every
/// poll completes without a wake-up. A future that did wait would be abandoned (None).
fn ready<F: Future>(future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(out) => Some(out),
        Poll::Pending => None,
    }
}

/// `(label, value)` of the body's parts; empty when it is not multipart.
pub fn fields(body: &[u8]) -> Vec<(String, String)> {
    let Some(boundary) = boundary(body) else {
        return Vec::new();
    };
    let chunk = Bytes::copy_from_slice(body);
    let stream =
        futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(chunk) });
    let mut parts = multer::Multipart::new(stream, boundary.to_owned());
    let mut out = Vec::new();
    while out.len() < MAX_PARTS {
        // A part the tap cut, or a malformed one, ends the walk: what came before is kept.
        let Some(Ok(Some(mut field))) = ready(parts.next_field()) else {
            break;
        };
        let name = field.name().unwrap_or("").to_owned();
        if let Some(file) = field.file_name() {
            out.push((format!("body.multipart.{name}.filename"), file.to_owned()));
            continue;
        }
        let mut text = Vec::new();
        while text.len() < MAX_PART_BYTES {
            match ready(field.chunk()) {
                Some(Ok(Some(bytes))) => text.extend_from_slice(&bytes),
                _ => break,
            }
        }
        text.truncate(MAX_PART_BYTES);
        out.push((
            format!("body.multipart.{name}"),
            String::from_utf8_lossy(&text).into_owned(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = b"--XyZ\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\n1' OR '1'='1\r\n--XyZ\r\nContent-Disposition: form-data; name=\"upload\"; filename=\"../../etc/passwd\"\r\nContent-Type: application/octet-stream\r\n\r\n\x00\x01binary\r\n--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--XyZ--\r\n";

    #[test]
    fn text_parts_and_file_names() {
        assert_eq!(
            fields(BODY),
            [
                ("body.multipart.title".to_owned(), "1' OR '1'='1".to_owned()),
                (
                    "body.multipart.upload.filename".to_owned(),
                    "../../etc/passwd".to_owned()
                ),
                ("body.multipart.note".to_owned(), "hello".to_owned()),
            ]
        );
    }

    #[test]
    fn cut_and_foreign_bodies() {
        // The tap cut the last part: the first two are still read.
        let cut = BODY.get(..BODY.len() - 30).unwrap_or_default();
        let got = fields(cut);
        assert!(got.len() >= 2, "{got:?}");
        assert_eq!(got.first().map(|f| f.1.as_str()), Some("1' OR '1'='1"));
        for body in [
            &b""[..],
            b"{\"a\":1}",
            b"--\r\n",
            b"--x y\r\n garbage",
            b"a=b&c=d",
        ] {
            assert!(fields(body).len() <= 1, "{body:?}");
        }
    }
}
