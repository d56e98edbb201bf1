//! The Kubernetes API client that keeps the pod index current: lists the pods of this node
//! (field selector `spec.nodeName`), then watches from that resource version; lists again when
//! the watch expires (410) and backs off on errors. Runs on its own thread; the capture loop
//! only reads the index.

use std::{
    io::{BufRead, BufReader, Read},
    path::PathBuf,
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use super::pods::{PodIndex, PodList, WatchEvent, WatchOutcome};

const SERVICE_ACCOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// One pod object in a watch stream is a few KiB; a line beyond this is not a pod we can use.
const MAX_WATCH_LINE: u64 = 4 << 20;
/// A node's pod list is at most a few MiB.
const MAX_LIST_BYTES: u64 = 64 << 20;
/// The API server ends a watch after this; our read timeout is a little longer so a dead
/// connection that never sends a FIN is noticed too.
const WATCH_SECONDS: u64 = 290;
const MAX_BACKOFF: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(
        "kubernetes enrichment needs this node's name: set NODE_NAME (downward API fieldPath \
spec.nodeName) or --node-name"
    )]
    NoNodeName,
    #[error("node name {0:?} is not a valid Kubernetes node name")]
    BadNodeName(String),
    #[error("reading the API CA certificate {0}: {1}")]
    CaFile(String, std::io::Error),
    #[error("the API CA file {0} holds no PEM certificate")]
    NoCertificate(String),
    #[error("reading the service account token {0}: {1}")]
    Token(String, std::io::Error),
    #[error("request to the Kubernetes API failed: {0}")]
    Http(#[from] ureq::Error),
    #[error(
        "the Kubernetes API answered {0} to {1}: the service account needs get/list/watch on pods \
(the cleartap ClusterRole grants it)"
    )]
    Forbidden(u16, &'static str),
    #[error("the Kubernetes API answered {0} to {1}")]
    Status(u16, &'static str),
    #[error("the Kubernetes API sent a pod list that does not parse: {0}")]
    BadList(serde_json::Error),
    #[error("starting the pod watcher thread: {0}")]
    Thread(std::io::Error),
}

/// Where the API is and how to authenticate.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Base URL, e.g. `https://10.96.0.1:443`.
    pub url: String,
    /// Bearer token file (re-read for every request: projected tokens rotate).
    pub token_file: Option<PathBuf>,
    /// CA bundle for the API's certificate; None: the system roots.
    pub ca_file: Option<PathBuf>,
    pub node: String,
}

impl ApiConfig {
    /// In-cluster settings: KUBERNETES_SERVICE_HOST/PORT and the service account mount.
    /// None outside a pod.
    pub fn in_cluster(node: Option<String>) -> Option<Result<Self, ApiError>> {
        let host = std::env::var("KUBERNETES_SERVICE_HOST").ok()?;
        let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        let sa = PathBuf::from(SERVICE_ACCOUNT);
        Some(Self::new(
            format!("https://{host}:{port}"),
            Some(sa.join("token")),
            Some(sa.join("ca.crt")),
            node,
        ))
    }

    pub fn new(
        url: String,
        token_file: Option<PathBuf>,
        ca_file: Option<PathBuf>,
        node: Option<String>,
    ) -> Result<Self, ApiError> {
        let node = node.filter(|n| !n.is_empty()).ok_or(ApiError::NoNodeName)?;
        // RFC 1123 subdomain: also keeps the name safe to put in a query string unescaped.
        let valid = node.len() <= 253
            && node
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !valid {
            return Err(ApiError::BadNodeName(node));
        }
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            token_file,
            ca_file,
            node,
        })
    }
}

/// What the watcher reports (read by metrics and the exit summary).
#[derive(Debug, Default)]
pub struct ApiStatus {
    /// True once a list has been applied (and while watches continue from it).
    pub synced: AtomicBool,
    pub errors: AtomicU64,
    pub relists: AtomicU64,
    /// Watch lines or objects that did not parse or were too long.
    pub unusable: AtomicU64,
}

struct Client {
    agent: ureq::Agent,
    config: ApiConfig,
}

impl Client {
    fn new(config: ApiConfig) -> Result<Self, ApiError> {
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(path) = &config.ca_file {
            let shown = path.display().to_string();
            let roots = crate::config::ca_file::root_certs(path).map_err(|e| match e {
                crate::config::ca_file::CaFileError::Read(e) => ApiError::CaFile(shown.clone(), e),
                crate::config::ca_file::CaFileError::NoCertificate => {
                    ApiError::NoCertificate(shown)
                }
            })?;
            tls = tls.root_certs(roots);
        }
        let agent = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(5)))
            .http_status_as_error(false)
            .tls_config(tls.build())
            .build()
            .into();
        Ok(Self { agent, config })
    }

    fn get(
        &self,
        query: &str,
        timeout: Duration,
        what: &'static str,
    ) -> Result<ureq::Body, ApiError> {
        let url = format!(
            "{}/api/v1/pods?fieldSelector=spec.nodeName%3D{}{query}",
            self.config.url, self.config.node
        );
        let mut request = self.agent.get(&url).header("Accept", "application/json");
        if let Some(path) = &self.config.token_file {
            let token = std::fs::read_to_string(path)
                .map_err(|e| ApiError::Token(path.display().to_string(), e))?;
            request = request.header("Authorization", format!("Bearer {}", token.trim()));
        }
        let response = request
            .config()
            .timeout_global(Some(timeout))
            .build()
            .call()?;
        match response.status().as_u16() {
            200..=299 => Ok(response.into_body()),
            code @ (401 | 403) => Err(ApiError::Forbidden(code, what)),
            code => Err(ApiError::Status(code, what)),
        }
    }

    fn list(&self) -> Result<PodList, ApiError> {
        let bytes = self
            .get("", Duration::from_secs(30), "the pod list")?
            .into_with_config()
            .limit(MAX_LIST_BYTES)
            .read_to_vec()?;
        serde_json::from_slice(&bytes).map_err(ApiError::BadList)
    }

    /// Applies watch events until the stream ends; Ok(true) asks for a new list.
    fn watch(
        &self,
        version: &mut String,
        index: &RwLock<PodIndex>,
        status: &ApiStatus,
        stop: &AtomicBool,
    ) -> Result<bool, ApiError> {
        let query = format!(
            "&watch=true&allowWatchBookmarks=true&timeoutSeconds={WATCH_SECONDS}&resourceVersion={version}"
        );
        let body = self.get(
            &query,
            Duration::from_secs(WATCH_SECONDS + 30),
            "the pod watch",
        )?;
        let mut reader = BufReader::new(body.into_reader());
        let mut line = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            line.clear();
            let n = (&mut reader)
                .take(MAX_WATCH_LINE)
                .read_until(b'\n', &mut line)
                .map_err(|e| ApiError::Http(ureq::Error::Io(e)))?;
            if n == 0 {
                return Ok(false);
            }
            if line.last() != Some(&b'\n') && n as u64 == MAX_WATCH_LINE {
                // Skip the rest of an oversized line.
                status.unusable.fetch_add(1, Ordering::Relaxed);
                let mut rest = Vec::new();
                while !matches!(rest.last(), Some(b'\n')) {
                    rest.clear();
                    if (&mut reader)
                        .take(MAX_WATCH_LINE)
                        .read_until(b'\n', &mut rest)
                        .map_err(|e| ApiError::Http(ureq::Error::Io(e)))?
                        == 0
                    {
                        return Ok(false);
                    }
                }
                continue;
            }
            let Ok(event) = serde_json::from_slice::<WatchEvent>(&line) else {
                status.unusable.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let outcome = match index.write() {
                Ok(mut index) => index.apply(event),
                Err(_) => return Ok(true),
            };
            match outcome {
                WatchOutcome::Continue(Some(v)) => *version = v,
                WatchOutcome::Continue(None) => {}
                WatchOutcome::Relist => return Ok(true),
                WatchOutcome::Unusable => {
                    status.unusable.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Ok(false)
    }
}

/// Starts the watcher thread. Errors here are configuration errors (CA file); the API being
/// unreachable is retried and reported on the thread.
pub fn spawn(
    config: ApiConfig,
    index: Arc<RwLock<PodIndex>>,
    status: Arc<ApiStatus>,
    stop: Arc<AtomicBool>,
) -> Result<(), ApiError> {
    let client = Client::new(config)?;
    std::thread::Builder::new()
        .name("k8s-pods".into())
        .spawn(move || run(client, &index, &status, &stop))
        .map_err(ApiError::Thread)?;
    Ok(())
}

/// Logs when the API starts failing, not on every retry, and sleeps the backoff.
struct Retry {
    backoff: Duration,
    failing: bool,
}

impl Retry {
    fn failed(&mut self, e: &ApiError, status: &ApiStatus) {
        status.errors.fetch_add(1, Ordering::Relaxed);
        if !self.failing {
            log::warn!(
                "{e}; pod enrichment retries with backoff (counted as kubernetes_api_errors)"
            );
            self.failing = true;
        }
        std::thread::sleep(self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    fn succeeded(&mut self) {
        self.failing = false;
        self.backoff = Duration::from_secs(1);
    }
}

fn run(client: Client, index: &RwLock<PodIndex>, status: &ApiStatus, stop: &AtomicBool) {
    let mut retry = Retry {
        backoff: Duration::from_secs(1),
        failing: false,
    };
    'list: while !stop.load(Ordering::Relaxed) {
        let list = match client.list() {
            Ok(list) => list,
            Err(e) => {
                retry.failed(&e, status);
                continue;
            }
        };
        let mut version = list.resource_version().unwrap_or("0").to_owned();
        let pods = list.len();
        if let Ok(mut index) = index.write() {
            index.replace(list);
        }
        status.synced.store(true, Ordering::Relaxed);
        log::info!(
            "kubernetes: {pods} pods on node {}, watching for changes",
            client.config.node
        );
        retry.succeeded();
        while !stop.load(Ordering::Relaxed) {
            match client.watch(&mut version, index, status, stop) {
                Ok(true) => {
                    status.relists.fetch_add(1, Ordering::Relaxed);
                    continue 'list;
                }
                Ok(false) => retry.succeeded(),
                Err(e) => {
                    // The index stays as it was: stale pods beat no pods.
                    retry.failed(&e, status);
                    continue 'list;
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "api_tests.rs"]
mod tests;
