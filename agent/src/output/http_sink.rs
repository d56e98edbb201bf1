//! HTTP transport (ureq, rustls): Splunk HTTP Event Collector, Elasticsearch `_bulk`, or plain
//! newline-delimited JSON. The auth header value comes from a file or an environment variable,
//! never from the command line (it would show in `ps`), and is never logged.

use std::time::Duration;

use super::sink::{Line, SendError, Transport};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpProtocol {
    /// POST `{"time":…,"host":…,"sourcetype":…,"index":…,"event":{…}}` objects, back to back.
    SplunkHec,
    /// POST `{"create":{"_index":…}}` + event line pairs; per-item errors read from the reply.
    ElasticsearchBulk,
    /// POST the event lines as they are.
    Ndjson,
}

pub struct HttpSink {
    agent: ureq::Agent,
    url: String,
    protocol: HttpProtocol,
    auth: Option<String>,
    index: Option<String>,
    host: String,
}

#[derive(Debug, thiserror::Error)]
pub enum HttpSetupError {
    #[error("reading ca_file {0}: {1}")]
    CaFile(String, std::io::Error),
    #[error("ca_file {0} holds no PEM certificate")]
    NoCertificate(String),
}

impl HttpSink {
    pub fn new(
        url: String,
        protocol: HttpProtocol,
        auth: Option<String>,
        index: Option<String>,
        ca_file: Option<&std::path::Path>,
        host: String,
    ) -> Result<Self, HttpSetupError> {
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(path) = ca_file {
            let shown = path.display().to_string();
            let roots = crate::config::ca_file::root_certs(path).map_err(|e| match e {
                crate::config::ca_file::CaFileError::Read(e) => {
                    HttpSetupError::CaFile(shown.clone(), e)
                }
                crate::config::ca_file::CaFileError::NoCertificate => {
                    HttpSetupError::NoCertificate(shown)
                }
            })?;
            tls = tls.root_certs(roots);
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(15)))
            .http_status_as_error(false)
            .tls_config(tls.build())
            .build()
            .into();
        Ok(Self {
            agent,
            url,
            protocol,
            auth,
            index,
            host,
        })
    }

    fn body(&self, batch: &[Line<'_>]) -> Vec<u8> {
        let mut body = Vec::with_capacity(batch.iter().map(|l| l.text.len() + 96).sum());
        for line in batch {
            match self.protocol {
                HttpProtocol::SplunkHec => {
                    let mut head = serde_json::json!({
                        "time": line.epoch_ms as f64 / 1000.0,
                        "host": self.host,
                        "source": "cleartap",
                        "sourcetype": "cleartap:event",
                    });
                    if let Some(index) = &self.index
                        && let Some(o) = head.as_object_mut()
                    {
                        o.insert("index".to_owned(), serde_json::Value::from(index.as_str()));
                    }
                    let head = head.to_string();
                    // `{...,"event":<line>}`: the line is already JSON; no re-parse.
                    let open = head.strip_suffix('}').unwrap_or(&head);
                    body.extend_from_slice(open.as_bytes());
                    body.extend_from_slice(b",\"event\":");
                    body.extend_from_slice(line.text.as_bytes());
                    body.extend_from_slice(b"}\n");
                }
                HttpProtocol::ElasticsearchBulk => {
                    let action = serde_json::json!({
                        "create": { "_index": self.index.as_deref().unwrap_or("cleartap") }
                    });
                    body.extend_from_slice(action.to_string().as_bytes());
                    body.push(b'\n');
                    body.extend_from_slice(line.text.as_bytes());
                    body.push(b'\n');
                }
                HttpProtocol::Ndjson => {
                    body.extend_from_slice(line.text.as_bytes());
                    body.push(b'\n');
                }
            }
        }
        body
    }
}

/// Which `_bulk` items to retry (429, 5xx) and how many were rejected for good.
pub fn bulk_failures(reply: &str) -> Option<(Vec<usize>, u64, String)> {
    let reply: serde_json::Value = serde_json::from_str(reply).ok()?;
    if reply.get("errors")? != &serde_json::Value::Bool(true) {
        return None;
    }
    let mut retry = Vec::new();
    let mut rejected = 0;
    let mut reason = String::new();
    for (i, item) in reply.get("items")?.as_array()?.iter().enumerate() {
        let Some(result) = item.as_object().and_then(|o| o.values().next()) else {
            continue;
        };
        let status = result.get("status").and_then(|s| s.as_u64()).unwrap_or(0);
        if status == 429 || status >= 500 {
            retry.push(i);
        } else if status >= 300 {
            rejected += 1;
            if reason.is_empty() {
                reason = result
                    .pointer("/error/type")
                    .and_then(|t| t.as_str())
                    .unwrap_or("rejected")
                    .to_owned();
            }
        }
    }
    Some((retry, rejected, reason))
}

impl Transport for HttpSink {
    fn send(&mut self, batch: &[Line<'_>]) -> Result<(), SendError> {
        let content_type = match self.protocol {
            HttpProtocol::SplunkHec => "application/json",
            _ => "application/x-ndjson",
        };
        let mut request = self
            .agent
            .post(&self.url)
            .header("Content-Type", content_type);
        if let Some(auth) = &self.auth {
            request = request.header("Authorization", auth);
        }
        let mut response = request
            .send(&self.body(batch)[..])
            .map_err(|e| SendError::Retry(format!("POST {}: {e}", self.url)))?;
        let status = response.status().as_u16();
        let reply = response.body_mut().read_to_string().unwrap_or_default();
        match status {
            200..=299 => {
                if self.protocol == HttpProtocol::ElasticsearchBulk
                    && let Some((retry, rejected, reason)) = bulk_failures(&reply)
                {
                    return Err(SendError::Partial {
                        retry,
                        rejected,
                        reason: format!("_bulk item errors ({reason})"),
                    });
                }
                Ok(())
            }
            // Client errors other than throttling will not get better by retrying.
            400..=499 if status != 429 && status != 408 => Err(SendError::Partial {
                retry: Vec::new(),
                rejected: batch.len() as u64,
                reason: format!("POST {} → {status}: {}", self.url, reply.trim()),
            }),
            _ => Err(SendError::Retry(format!(
                "POST {} → {status}: {}",
                self.url,
                reply.trim()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_reply_items_split_into_retry_and_rejected() {
        let reply = r#"{"errors":true,"items":[
            {"create":{"status":201}},
            {"create":{"status":429,"error":{"type":"es_rejected_execution_exception"}}},
            {"create":{"status":400,"error":{"type":"mapper_parsing_exception"}}},
            {"create":{"status":503}}]}"#;
        let (retry, rejected, reason) = bulk_failures(reply).expect("errors");
        assert_eq!(retry, [1, 3]);
        assert_eq!(rejected, 1);
        assert_eq!(reason, "mapper_parsing_exception");
        assert!(bulk_failures(r#"{"errors":false,"items":[]}"#).is_none());
        assert!(bulk_failures("not json").is_none());
    }

    #[test]
    fn hec_body_embeds_the_event_line_unchanged() {
        let sink = HttpSink::new(
            "http://127.0.0.1:1/x".into(),
            HttpProtocol::SplunkHec,
            None,
            Some("main".into()),
            None,
            "node-1".into(),
        )
        .expect("sink");
        let line = Line {
            text: r#"{"schema":"s","n":1}"#,
            epoch_ms: 1_700_000_000_123,
        };
        let body = String::from_utf8(sink.body(&[line])).expect("utf8");
        let v: serde_json::Value = serde_json::from_str(body.trim()).expect("json");
        assert_eq!(v["event"]["n"], 1);
        assert_eq!(v["index"], "main");
        assert_eq!(v["host"], "node-1");
        assert_eq!(v["time"], 1_700_000_000.123);
    }
}
