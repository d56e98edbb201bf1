#!/usr/bin/env python3
"""A stand-in Kubernetes API server for the pod-enrichment test: answers the pod list with a
recorded PodList file and keeps watch requests open (no changes), like an idle API server.

Usage: k8s_api.py PORT PODLIST_JSON TOKEN
Requests without `Authorization: Bearer TOKEN` get 401; each request line is printed to stdout.
"""
import http.server
import sys
import time

PORT, LIST_FILE, TOKEN = int(sys.argv[1]), sys.argv[2], sys.argv[3]
with open(LIST_FILE, "rb") as f:
    POD_LIST = f.read()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        print(self.requestline, flush=True)
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if not self.path.startswith("/api/v1/pods?fieldSelector=spec.nodeName%3D"):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if "watch=true" in self.path:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            time.sleep(3600)
            return
        self.send_header("Content-Length", str(len(POD_LIST)))
        self.end_headers()
        self.wfile.write(POD_LIST)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer.daemon_threads = True
http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
