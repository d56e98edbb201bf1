"""HTTPS client for cleartap's end-to-end tests: one GET with a custom header over Python's ssl.

Usage: https_client.py PORT PATH
Prints "<status> <body bytes> <local port>".
"""
import http.client
import ssl
import sys


def main():
    port, path = int(sys.argv[1]), sys.argv[2]
    ctx = ssl._create_unverified_context()
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx)
    conn.request("GET", path, headers={"X-From": "python-e2e"})
    resp = conn.getresponse()
    body = resp.read()
    local_port = conn.sock.getsockname()[1]
    print(resp.status, len(body), local_port)
    conn.close()


if __name__ == "__main__":
    main()
