"""An API client for cleartap's detection end-to-end test, over Python's ssl, on one keep-alive
connection: GET /users/1..N with one bearer token (object id enumeration), then GET /me with an
unsigned JWT (alg none).

Usage: api_client.py PORT TOKEN N
Prints the statuses, space separated.
"""
import base64
import http.client
import json
import ssl
import sys


def b64(obj):
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


port, token, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
conn = http.client.HTTPSConnection("127.0.0.1", port, context=ssl._create_unverified_context())
statuses = []
for i in range(1, n + 1):
    conn.request("GET", f"/users/{i}", headers={"Authorization": f"Bearer {token}", "Host": "api.test"})
    resp = conn.getresponse()
    resp.read()
    statuses.append(resp.status)
unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64({'sub': 'mallory', 'role': 'admin'})}."
conn.request("GET", "/me", headers={"Authorization": f"Bearer {unsigned}", "Host": "api.test"})
resp = conn.getresponse()
resp.read()
statuses.append(resp.status)
print(" ".join(map(str, statuses)))
