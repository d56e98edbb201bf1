//! Real peers for the end-to-end tests: TLS servers from apt (openssl s_server, nginx) and a
//! Python ssl server, each killed when dropped.

use std::process::Command;

use crate::{Peer, TempDir, make_cert, wait_for_port};

pub const PYTHON: &str = "/usr/bin/python3";

pub fn peers_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("peers")
}

pub fn s_server(dir: &TempDir, port: u16) -> Peer {
    let (cert, key) = make_cert(dir);
    let child = Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-accept", &port.to_string()])
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start openssl s_server");
    wait_for_port(port, "openssl s_server");
    Peer(child, "s_server")
}

/// nginx in the foreground (one process) with `conf` written to `dir/nginx.conf`.
fn run_nginx(dir: &TempDir, conf: &str, port: u16) -> Peer {
    run_nginx_named(dir, conf, port, "nginx.conf")
}

fn run_nginx_named(dir: &TempDir, conf: &str, port: u16, name: &str) -> Peer {
    let conf_path = dir.path(name);
    std::fs::write(&conf_path, conf).expect("nginx.conf");
    let child = Command::new("nginx")
        .arg("-p")
        .arg(&dir.0)
        .arg("-c")
        .arg(&conf_path)
        .args(["-g", "daemon off; master_process off;"])
        .spawn()
        .expect("start nginx");
    wait_for_port(port, "nginx");
    Peer(child, "nginx")
}

pub const NGINX_FILE_BYTES: usize = 1234;

pub fn nginx(dir: &TempDir, port: u16) -> Peer {
    let (cert, key) = make_cert(dir);
    let root = dir.path("www");
    std::fs::create_dir_all(&root).expect("www dir");
    std::fs::write(root.join("file.bin"), vec![b'n'; NGINX_FILE_BYTES]).expect("file");
    let d = dir.0.display();
    let conf = format!(
        "pid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\nhttp {{\n  access_log off;\n  \
client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  \
uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  keepalive_requests 1000;\n  server {{\n    \
listen 127.0.0.1:{port} ssl;\n    ssl_certificate {};\n    ssl_certificate_key {};\n    root {};\n    \
location /k/ {{ return 200 \"k\\n\"; }}\n  }}\n}}\n",
        cert.display(),
        key.display(),
        root.display()
    );
    run_nginx(dir, &conf, port)
}

/// The sensitive route of `nginx_api`: a JSON body with a Luhn-valid card number (DATA-1).
pub const SECRET_BODY: &str = r#"{"name":"a","card":"4111 1111 1111 1111"}"#;

/// nginx serving an API over TLS on `port` and plain HTTP on `plain_port`: `/secret`
/// (sensitive), `/public`, `/api/items/{id}`, with an access log at `dir/access.log` naming each
/// request's method, path and Authorization value (which requests nginx really received, and
/// whose).
pub fn nginx_api(dir: &TempDir, port: u16, plain_port: u16) -> Peer {
    let (cert, key) = make_cert(dir);
    let d = dir.0.display();
    let conf = format!(
        "pid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\nhttp {{\n  \
log_format tok '$request_method $uri $http_authorization';\n  access_log {d}/access.log tok;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
keepalive_requests 100000;\n  server {{\n    listen 127.0.0.1:{port} ssl;\n    \
listen 127.0.0.1:{plain_port};\n    \
ssl_certificate {};\n    ssl_certificate_key {};\n    default_type application/json;\n    \
location = /secret {{ return 200 '{SECRET_BODY}'; }}\n    \
location = /public {{ return 200 '{{\"ok\":true}}'; }}\n    \
location /api/items/ {{ return 200 '{{\"item\":1}}'; }}\n  }}\n}}\n",
        cert.display(),
        key.display(),
    );
    run_nginx(dir, &conf, port)
}

/// nginx (plain HTTP) as a gateway in front of static files `/secret`, `/public` and
/// `/api/items/1..=25`, asking a decision service at `decision_port` about every request
/// (`auth_request`), failing open when the service is down — the README's snippet. The access
/// log names method, path, status and Authorization.
pub fn nginx_gateway(dir: &TempDir, port: u16, decision_port: u16) -> Peer {
    let root = dir.path("gateway-www");
    std::fs::create_dir_all(root.join("api/items")).expect("www dir");
    std::fs::write(root.join("secret"), SECRET_BODY).expect("secret");
    std::fs::write(root.join("public"), "{\"ok\":true}").expect("public");
    for id in 1..=25 {
        std::fs::write(root.join(format!("api/items/{id}")), "{\"item\":1}").expect("item");
    }
    let d = dir.0.display();
    let conf = format!(
        "pid {d}/gateway.pid;\nerror_log {d}/gateway-error.log;\nevents {{}}\nhttp {{\n  \
log_format tok '$request_method $uri $status $http_authorization';\n  \
access_log {d}/gateway-access.log tok;\n  client_body_temp_path {d}/body;\n  \
proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  \
scgi_temp_path {d}/scgi;\n  default_type application/json;\n  server {{\n    \
listen 127.0.0.1:{port};\n    root {};\n    \
location / {{ auth_request /cleartap-decision; }}\n    \
location = /cleartap-decision {{\n      internal;\n      \
proxy_pass http://127.0.0.1:{decision_port}/;\n      proxy_pass_request_body off;\n      \
proxy_set_header Content-Length \"\";\n      proxy_set_header X-Original-URI $request_uri;\n      \
proxy_set_header X-Original-Method $request_method;\n      \
proxy_set_header X-Forwarded-Host $host;\n      \
error_page 500 502 503 504 = @cleartap_down;\n    }}\n    \
location @cleartap_down {{ return 204; }}\n  }}\n}}\n",
        root.display(),
    );
    run_nginx_named(dir, &conf, port, "gateway.conf")
}

pub const PLAIN_FILE_BYTES: usize = 100 * 1024;

/// nginx serving plain HTTP. With `sendfile` off it sends bodies with writev (the vectored
/// capture path); with it on, bodies go file → socket and never pass through user memory.
pub fn nginx_plain(dir: &TempDir, port: u16, sendfile: bool) -> Peer {
    let root = dir.path("www");
    std::fs::create_dir_all(&root).expect("www dir");
    std::fs::write(root.join("big.bin"), vec![b'p'; PLAIN_FILE_BYTES]).expect("file");
    let d = dir.0.display();
    let conf = format!(
        "pid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\nhttp {{\n  access_log off;\n  \
sendfile {};\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
server {{\n    listen 127.0.0.1:{port};\n    root {};\n  }}\n}}\n",
        if sendfile { "on" } else { "off" },
        root.display()
    );
    run_nginx(dir, &conf, port)
}

/// python's http.server (plain HTTP) serving `root`.
pub fn python_http_server(root: &std::path::Path, port: u16) -> Peer {
    let child = Command::new(PYTHON)
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ])
        .current_dir(root)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start python http.server");
    wait_for_port(port, "python http.server");
    Peer(child, "python http.server")
}

pub fn python_server(dir: &TempDir, port: u16) -> Peer {
    let (cert, key) = make_cert(dir);
    let child = Command::new(PYTHON)
        .arg(peers_dir().join("tls_http_server.py"))
        .arg(port.to_string())
        .arg(&cert)
        .arg(&key)
        .spawn()
        .expect("start python TLS server");
    wait_for_port(port, "python TLS server");
    Peer(child, "python server")
}

pub fn curl(args: &[&str]) -> Command {
    let mut cmd = Command::new("curl");
    cmd.args(["-sk", "--max-time", "20"]).args(args);
    cmd
}

/// nginx (TLS) speaking HTTP/2 (`listen … ssl http2`, nginx 1.22's syntax) and HTTP/1.1 by
/// ALPN: `/file.bin` (NGINX_FILE_BYTES), `/api/items/{id}` (JSON), and an access log of
/// `$request_method $uri $server_protocol` at `dir/access.log`.
pub fn nginx_h2(dir: &TempDir, port: u16) -> Peer {
    let (cert, key) = make_cert(dir);
    let root = dir.path("www");
    std::fs::create_dir_all(&root).expect("www dir");
    std::fs::write(root.join("file.bin"), vec![b'n'; NGINX_FILE_BYTES]).expect("file");
    let d = dir.0.display();
    let conf = format!(
        "pid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\nhttp {{\n  \
log_format proto '$request_method $uri $server_protocol';\n  access_log {d}/access.log proto;\n  \
client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  \
uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  keepalive_requests 100000;\n  \
server {{\n    listen 127.0.0.1:{port} ssl http2;\n    \
ssl_certificate {};\n    ssl_certificate_key {};\n    root {};\n    default_type application/json;\n    \
location /api/items/ {{ return 200 '{{\"item\":1}}'; }}\n  }}\n}}\n",
        cert.display(),
        key.display(),
        root.display()
    );
    run_nginx(dir, &conf, port)
}

/// nghttpd (nghttp2's server) serving `dir/www`: TLS with a self-signed certificate, or h2c
/// (prior knowledge and `Upgrade: h2c`) with `tls = false`.
pub fn nghttpd(dir: &TempDir, port: u16, tls: bool) -> Peer {
    let root = dir.path("www");
    std::fs::create_dir_all(&root).expect("www dir");
    std::fs::write(root.join("file.bin"), vec![b'n'; NGINX_FILE_BYTES]).expect("file");
    let mut cmd = Command::new("nghttpd");
    cmd.arg("-d").arg(&root).arg("--address=127.0.0.1");
    if tls {
        let (cert, key) = make_cert(dir);
        cmd.arg(port.to_string()).arg(&key).arg(&cert);
    } else {
        cmd.arg("--no-tls").arg(port.to_string());
    }
    let child = cmd
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start nghttpd");
    wait_for_port(port, "nghttpd");
    Peer(child, "nghttpd")
}

/// A gRPC server over TLS from Debian's python3-grpcio (it links the system libssl), with
/// generic handlers on raw bytes: `demo.Greeter/SayHello` (unary; "nobody" → NOT_FOUND) and
/// `demo.Greeter/ListHellos` (server streaming: three messages).
pub fn grpc_server(dir: &TempDir, port: u16) -> Peer {
    let (cert, key) = make_cert(dir);
    let child = Command::new(PYTHON)
        .arg(peers_dir().join("grpc_peer.py"))
        .args(["serve", &port.to_string()])
        .arg(&cert)
        .arg(&key)
        .spawn()
        .expect("start gRPC server");
    wait_for_port(port, "gRPC server");
    Peer(child, "grpc server")
}

/// The python with the tests' PyPI packages (sonora for gRPC-Web, openapi-spec-validator),
/// prepared by `cargo xtask test` (CLEARTAP_TEST_PYTHON). Under CI=true its absence fails the
/// test; elsewhere the test is skipped with the reason printed.
pub fn test_python() -> Option<std::path::PathBuf> {
    let reason = match std::env::var_os("CLEARTAP_TEST_PYTHON").map(std::path::PathBuf::from) {
        Some(p) if p.exists() => return Some(p),
        Some(p) => format!("CLEARTAP_TEST_PYTHON={} does not exist", p.display()),
        None => "CLEARTAP_TEST_PYTHON is not set (`cargo xtask test` makes the venv)".into(),
    };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but a test that needs PyPI packages cannot run: {reason}");
    }
    eprintln!("SKIPPED: {reason}");
    None
}

/// A gRPC-Web server over plain HTTP/1.1 (sonora's WSGI app under wsgiref).
pub fn grpc_web_server(python: &std::path::Path, port: u16) -> Peer {
    let child = Command::new(python)
        .arg(peers_dir().join("grpc_web_peer.py"))
        .args(["serve", &port.to_string()])
        .spawn()
        .expect("start gRPC-Web server");
    wait_for_port(port, "gRPC-Web server");
    Peer(child, "grpc-web server")
}

/// An h2c server that accepts `Upgrade: h2c` (nghttpd does not), on Debian's python3-h2.
pub fn h2c_upgrade_server(port: u16) -> Peer {
    let child = Command::new(PYTHON)
        .arg(peers_dir().join("h2c_upgrade_server.py"))
        .arg(port.to_string())
        .spawn()
        .expect("start h2c upgrade server");
    wait_for_port(port, "h2c upgrade server");
    Peer(child, "h2c upgrade server")
}

/// A REST API on Flask over TLS (`flask_api.py`): users, orders.
pub fn flask_api(dir: &TempDir, port: u16) -> Peer {
    let (cert, key) = make_cert(dir);
    let child = Command::new(PYTHON)
        .arg(peers_dir().join("flask_api.py"))
        .args(["serve", &port.to_string()])
        .arg(&cert)
        .arg(&key)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the Flask API");
    wait_for_port(port, "Flask API");
    Peer(child, "flask api")
}

/// A GraphQL API on graphene served by Flask over TLS (`graphql_api.py`), batching allowed.
pub fn graphql_api(dir: &TempDir, port: u16) -> Peer {
    let (cert, key) = make_cert(dir);
    let child = Command::new(PYTHON)
        .arg(peers_dir().join("graphql_api.py"))
        .args(["serve", &port.to_string()])
        .arg(&cert)
        .arg(&key)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the GraphQL API");
    wait_for_port(port, "GraphQL API");
    Peer(child, "graphql api")
}

/// The deliberately vulnerable SQLite API (tests/peers/sqli_app.py); `safe` binds parameters.
pub fn sqli_app(dir: &TempDir, port: u16, safe: bool) -> Peer {
    let (cert, key) = make_cert(dir);
    let mut cmd = Command::new(PYTHON);
    cmd.arg(peers_dir().join("sqli_app.py"))
        .arg(port.to_string())
        .arg(&cert)
        .arg(&key);
    if safe {
        cmd.arg("--safe");
    }
    let child = cmd.spawn().expect("start sqli_app.py");
    wait_for_port(port, "sqli app");
    Peer(child, "sqli app")
}
