"""Sends requests over one keep-alive HTTPS connection, for cleartap's end-to-end tests.

Reads JSON lines {"method", "target", "headers": {...}, "body": str|null} on stdin; prints the
number of responses read. Certificates are not checked (the tests' servers are self-signed).
Usage: send_requests.py HOST PORT
"""
import http.client
import json
import ssl
import sys


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection(host, port, context=context)
    done = 0
    for line in sys.stdin:
        r = json.loads(line)
        body = r.get("body")
        conn.request(r["method"], r["target"], body=body.encode() if body else None,
                     headers=r.get("headers") or {})
        conn.getresponse().read()
        done += 1
    print(done)


if __name__ == "__main__":
    main()
