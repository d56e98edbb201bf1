"""A deliberately vulnerable HTTPS API over a real SQLite database, for cleartap's layered
injection tests: GET /items?id=… runs `SELECT name FROM items WHERE id = <id>` built by string
concatenation, so an injected `sleep(n)` (an SQLite function registered below, as MySQL's SLEEP
is built in) really makes the database wait; GET /search?q=… answers an HTML page that echoes
the query as it came (reflected cross-site scripting). With --safe the first binds `id` as a
parameter (the payload is data, nothing sleeps) and the second escapes the query.

Usage: sqli_app.py PORT CERT KEY [--safe]
"""
import html
import http.server
import json
import sqlite3
import ssl
import sys
import time
import urllib.parse

SAFE = "--safe" in sys.argv


def database():
    db = sqlite3.connect(":memory:")
    db.create_function("sleep", 1, lambda seconds: time.sleep(float(seconds)) or 0)
    db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
    db.executemany("INSERT INTO items VALUES (?, ?)", [(1, "widget"), (2, "gadget")])
    return db


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status, doc):
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _search(self, url):
        q = urllib.parse.parse_qs(url.query).get("q", [""])[0]
        shown = html.escape(q) if SAFE else q
        body = f"<!doctype html><html><body><h1>Results for {shown}</h1><p>No items.</p></body></html>"
        body = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/search":
            self._search(url)
            return
        item = urllib.parse.parse_qs(url.query).get("id", [""])[0]
        db = database()
        try:
            if SAFE:
                rows = db.execute("SELECT name FROM items WHERE id = ?", (item,)).fetchall()
            else:
                rows = db.execute("SELECT name FROM items WHERE id = " + item).fetchall()
        except sqlite3.Error as e:
            self._send(500, {"error": "query failed"})
            return
        self._send(200, {"items": [r[0] for r in rows]})


def main():
    port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
