//! The watcher against a local HTTP server that answers with the recorded list and watch
//! responses: the requests it makes (path, node selector, resource versions, bearer token) and
//! the index it keeps.

use std::{
    io::{BufRead, BufReader, Write},
    net::TcpListener,
    sync::mpsc,
};

use super::*;

const LIST: &str = include_str!("../../../tests/fixtures/kubernetes/pods-on-node.json");
const WATCH: &str = include_str!("../../../tests/fixtures/kubernetes/pods-watch.jsonl");

/// Answers each connection with the next canned response; sends each request line and its
/// Authorization header to the test.
fn serve(responses: Vec<(u16, String)>) -> (String, mpsc::Receiver<(String, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("test precondition");
    let url = format!(
        "http://{}",
        listener.local_addr().expect("test precondition")
    );
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for (status, body) in responses {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            let mut reader = BufReader::new(stream.try_clone().expect("test precondition"));
            let mut request_line = String::new();
            reader
                .read_line(&mut request_line)
                .expect("test precondition");
            let mut auth = String::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).expect("test precondition");
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                if let Some(v) = line
                    .strip_prefix("authorization: ")
                    .or(line.strip_prefix("Authorization: "))
                {
                    auth = v.trim().to_owned();
                }
            }
            let _ = tx.send((request_line.trim().to_owned(), auth));
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
        // Further requests wait here until the test ends.
        let _hold = listener.accept();
        std::thread::sleep(Duration::from_secs(60));
    });
    (url, rx)
}

fn wait_for(index: &RwLock<PodIndex>, what: impl Fn(&PodIndex) -> bool) {
    for _ in 0..500 {
        if what(&index.read().expect("test precondition")) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("index never reached the expected state");
}

#[test]
fn lists_then_watches_this_node_and_relists_on_410() {
    let token = std::env::temp_dir().join(format!("cleartap-k8s-token-{}", std::process::id()));
    std::fs::write(&token, "sa-token-value\n").expect("test precondition");
    let (url, requests) = serve(vec![
        (200, LIST.to_owned()),
        (200, WATCH.to_owned()),
        (200, LIST.to_owned()),
    ]);
    let config = ApiConfig::new(url, Some(token.clone()), None, Some("worker-3".into()))
        .expect("test precondition");
    let index = Arc::new(RwLock::new(PodIndex::default()));
    let status = Arc::new(ApiStatus::default());
    let stop = Arc::new(AtomicBool::new(false));
    spawn(config, index.clone(), status.clone(), stop.clone()).expect("test precondition");

    let seen: Vec<_> = (0..3)
        .map(|_| {
            requests
                .recv_timeout(Duration::from_secs(10))
                .expect("test precondition")
        })
        .collect();
    stop.store(true, Ordering::Relaxed);
    assert_eq!(
        seen[0],
        (
            "GET /api/v1/pods?fieldSelector=spec.nodeName%3Dworker-3 HTTP/1.1".into(),
            "Bearer sa-token-value".into()
        )
    );
    assert_eq!(
        seen[1].0,
        "GET /api/v1/pods?fieldSelector=spec.nodeName%3Dworker-3&watch=true&allowWatchBookmarks=true&timeoutSeconds=290&resourceVersion=48213 HTTP/1.1"
    );
    // The watch ended with 410 Gone: listed again.
    assert_eq!(seen[2].0, seen[0].0);
    wait_for(&index, |i| {
        i.by_container("8d2f0c1b7e3a4f5d9c6b0a1e2d3f4c5b6a7e8d9c0b1a2f3e4d5c6b7a8e9f0a1b")
            .is_some()
    });
    assert!(status.synced.load(Ordering::Relaxed));
    assert_eq!(status.relists.load(Ordering::Relaxed), 1);
    assert_eq!(status.errors.load(Ordering::Relaxed), 0);
    std::fs::remove_file(token).expect("test precondition");
}

#[test]
fn forbidden_is_counted_and_names_the_missing_permission() {
    let (url, requests) = serve(vec![(403, r#"{"kind":"Status","code":403}"#.to_owned())]);
    let client = Client::new(
        ApiConfig::new(url, None, None, Some("worker-3".into())).expect("test precondition"),
    )
    .expect("test precondition");
    let err = client.list().expect_err("must fail");
    assert!(err.to_string().contains("get/list/watch on pods"), "{err}");
    assert_eq!(
        requests.recv().expect("test precondition").1,
        "",
        "no token file, no header"
    );
}

#[test]
fn node_names_are_checked() {
    assert!(matches!(
        ApiConfig::new("http://x".into(), None, None, None),
        Err(ApiError::NoNodeName)
    ));
    assert!(matches!(
        ApiConfig::new("http://x".into(), None, None, Some("a&watch=1".into())),
        Err(ApiError::BadNodeName(_))
    ));
}
