"""Hostile HTTP/1.1 traffic over real TLS (Python's ssl, i.e. the system libssl) for cleartap's
end-to-end robustness test. Each case is one connection carrying raw bytes no well-behaved client
or server would send; after each case the client makes one ordinary request, /after/N, on a new
connection, so the test can check that capture goes on after every hostile exchange.

    hostile_peer.py server PORT CERT KEY    answers by path (see RESPONSES), then closes
    hostile_peer.py client PORT              runs every case, prints "case N NAME: after=STATUS"
"""
import gzip
import socket
import ssl
import sys
import threading

# Requests: (name, raw bytes). Paths start with /h/ so the server answers them plainly.
DEEP_JSON = b'{"a":' * 20000 + b"1" + b"}" * 20000
REQUESTS = [
    ("basic-non-ascii-scheme", b"GET /h/1 HTTP/1.1\r\nHost: api.test\r\nAuthorization: Basic\xc3\xa9 x\r\n\r\n"),
    ("bearer-invalid-utf8", b"GET /h/2 HTTP/1.1\r\nHost: api.test\r\nAuthorization: Bearer \xff\xfe\xfd\r\n\r\n"),
    ("scheme-invalid-utf8", b"GET /h/3 HTTP/1.1\r\nHost: api.test\r\nAuthorization: \xc3\x28 abc\r\nCookie: \xe9=\xff\r\n\r\n"),
    ("non-ascii-target", b"GET /h/\xc3\xa9t\xc3\xa9?q=\xff\xfe&x=%ZZ%&y=%c3%28 HTTP/1.1\r\nHost: \xe2\x98\x83\r\nUser-Agent: \xff\r\n\r\n"),
    ("nul-in-header", b"GET /h/5 HTTP/1.1\r\nHost: api.test\r\nX-A: a\x00b\r\n\r\n"),
    ("thousands-of-headers", b"GET /h/6 HTTP/1.1\r\nHost: api.test\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(3000)) + b"\r\n"),
    ("100kb-query", b"GET /h/7?q=" + b"A" * 100_000 + b" HTTP/1.1\r\nHost: api.test\r\n\r\n"),
    ("deep-json-body", b"POST /h/8 HTTP/1.1\r\nHost: api.test\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(DEEP_JSON) + DEEP_JSON),
    ("cl-and-te", b"POST /h/9 HTTP/1.1\r\nHost: api.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /h/9b HTTP/1.1\r\nHost: api.test\r\n\r\n"),
    ("two-content-lengths", b"POST /h/10 HTTP/1.1\r\nHost: api.test\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\nabc"),
    ("chunk-size-overflow-request", b"POST /h/11 HTTP/1.1\r\nHost: api.test\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFFFFFF\r\nabc\r\n"),
    ("gzip-bomb-response", b"GET /r/gzip-bomb HTTP/1.1\r\nHost: api.test\r\n\r\n"),
    ("chunk-size-overflow-response", b"GET /r/chunk-overflow HTTP/1.1\r\nHost: api.test\r\n\r\n"),
    ("deep-json-response", b"GET /r/deep-json HTTP/1.1\r\nHost: api.test\r\n\r\n"),
    ("invalid-utf8-response-head", b"GET /r/bad-head HTTP/1.1\r\nHost: api.test\r\n\r\n"),
    ("card-in-binary-response", b"GET /r/binary HTTP/1.1\r\nHost: api.test\r\n\r\n"),
]


def _bomb():
    return gzip.compress(b"\0" * (64 << 20), compresslevel=9)


RESPONSES = {
    b"/r/gzip-bomb": lambda: (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
        + b"Content-Length: %d\r\n\r\n" % len(BOMB) + BOMB
    ),
    b"/r/chunk-overflow": lambda: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFFFFFFFFFF\r\nabc\r\n",
    b"/r/deep-json": lambda: (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(DEEP_JSON) + DEEP_JSON
    ),
    b"/r/bad-head": lambda: b"HTTP/1.1 200 \xff\xfe\xc3\r\nX-Bin: \xff\xfe\r\nSet-Cookie: \xff=\xfe\r\nContent-Length: 2\r\n\r\nok",
    b"/r/binary": lambda: (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n" % len(BINARY)
        + BINARY
    ),
}
BOMB = b""
BINARY = b"\xff\xfe4111 1111 1111 1111\x00\x80" + b"\xc3" * 41  # 64 bytes


def answer(conn):
    conn.settimeout(5)
    data = b""
    try:
        while b"\r\n\r\n" not in data and len(data) < 400_000:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        # Whatever else was sent (bodies) is read for a moment, so the client's write completes.
        conn.settimeout(0.2)
        try:
            while conn.recv(65536):
                pass
        except (socket.timeout, ssl.SSLError, OSError):
            pass
        conn.settimeout(5)
        target = data.split(b" ", 2)[1] if data.count(b" ") >= 2 else b"/"
        make = RESPONSES.get(target.split(b"?")[0])
        if make is not None:
            conn.sendall(make())
        else:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
    except (OSError, ssl.SSLError):
        pass
    finally:
        try:
            conn.close()
        except OSError:
            pass


def server(port, cert, key):
    global BOMB
    BOMB = _bomb()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", port))
    while True:
        raw, _ = listener.accept()
        try:
            conn = ctx.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            raw.close()
            continue
        threading.Thread(target=answer, args=(conn,), daemon=True).start()


def exchange(port, payload):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw) as conn:
            conn.sendall(payload)
            reply = b""
            try:
                while True:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    reply += chunk
                    if len(reply) > (8 << 20):
                        break
            except (socket.timeout, ssl.SSLError, OSError):
                pass
            return reply


def client(port):
    for n, (name, payload) in enumerate(REQUESTS, start=1):
        try:
            exchange(port, payload)
        except (OSError, ssl.SSLError) as e:
            print(f"case {n} {name}: send failed: {e}", file=sys.stderr)
        reply = exchange(port, b"GET /after/%d HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n" % n)
        status = reply.split(b" ", 2)[1].decode() if reply.startswith(b"HTTP/1.1 ") else "none"
        print(f"case {n} {name}: after={status}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    else:
        client(int(sys.argv[2]))
