"""A SIEM stand-in that speaks the two protocols cleartap's HTTP sink sends: Splunk HEC
(POST /services/collector/event, `Authorization: Splunk <token>`, concatenated JSON objects)
and Elasticsearch _bulk (POST /_bulk, NDJSON action/document pairs, per-item reply).

Every accepted event is appended, one JSON object per line, to OUT_FILE as
{"protocol": ..., "index": ..., "event": {...}}; every batch is checked and a malformed one is
answered 400 and logged to OUT_FILE.errors. `--fail-first N` answers the first N batches 503.

usage: siem_receiver.py PORT OUT_FILE TOKEN CERT KEY [--fail-first N]
"""
import http.server
import json
import ssl
import sys
import threading

port, out_file, token, cert, key = sys.argv[1:6]
fail_first = int(sys.argv[7]) if len(sys.argv) > 7 and sys.argv[6] == "--fail-first" else 0
lock = threading.Lock()
state = {"batches": 0}


def record(items):
    with lock, open(out_file, "a") as f:
        for item in items:
            f.write(json.dumps(item) + "\n")


def error(message):
    with lock, open(out_file + ".errors", "a") as f:
        f.write(message + "\n")


def hec_events(body):
    decoder = json.JSONDecoder()
    text = body.decode()
    pos, events = 0, []
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return events
        obj, pos = decoder.raw_decode(text, pos)
        for field in ("time", "host", "sourcetype", "event"):
            if field not in obj:
                raise ValueError(f"HEC event without {field}")
        events.append({"protocol": "hec", "index": obj.get("index"), "time": obj["time"],
                       "event": obj["event"]})


def bulk_events(body):
    lines = [l for l in body.decode().split("\n") if l.strip()]
    if len(lines) % 2:
        raise ValueError("odd number of _bulk lines")
    events = []
    for action, doc in zip(lines[0::2], lines[1::2]):
        action = json.loads(action)
        if list(action) != ["create"]:
            raise ValueError(f"unexpected _bulk action {action}")
        events.append({"protocol": "bulk", "index": action["create"]["_index"],
                       "event": json.loads(doc)})
    return events


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with lock:
            state["batches"] += 1
            failing = state["batches"] <= fail_first
        if failing:
            return self.reply(503, {"text": "busy", "code": 9})
        try:
            if self.path == "/services/collector/event":
                if self.headers.get("Authorization") != f"Splunk {token}":
                    return self.reply(401, {"text": "Invalid authorization", "code": 3})
                record(hec_events(body))
                return self.reply(200, {"text": "Success", "code": 0})
            if self.path == "/_bulk":
                if self.headers.get("Authorization") != f"ApiKey {token}":
                    return self.reply(401, {"error": "unauthorized"})
                if "ndjson" not in self.headers.get("Content-Type", ""):
                    raise ValueError("_bulk needs application/x-ndjson")
                events = bulk_events(body)
                record(events)
                items = [{"create": {"status": 201}} for _ in events]
                return self.reply(200, {"errors": False, "items": items})
        except (ValueError, KeyError) as e:
            error(f"{self.path}: {e}")
            return self.reply(400, {"error": str(e)})
        self.reply(404, {"error": "no such endpoint"})

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
