"""A small REST API on Flask (Debian's python3-flask) over TLS (werkzeug's server with the
system libssl), for the API-discovery tests; and a client that drives it.

  flask_api.py serve PORT CERT KEY
  flask_api.py drive PORT        every endpoint, a few times each, with realistic values
"""

import json
import ssl
import sys
import urllib.request

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.get("/api/v1/users/<int:user_id>")
def get_user(user_id):
    return jsonify(
        id=user_id,
        email=f"user{user_id}@corp.example",
        created="2024-05-01T10:00:00Z",
        roles=["reader"],
        address={"city": "Lisbon", "zip": "1000-001"},
    )


@app.get("/api/v1/users")
def list_users():
    limit = int(request.args.get("limit", "10"))
    return jsonify(items=[{"id": i, "name": f"user{i}"} for i in range(min(limit, 3))], total=3)


@app.post("/api/v1/orders")
def create_order():
    body = request.get_json()
    return jsonify(order_id="7d1e6c2a-3b4f-4a5e-9c8d-0e1f2a3b4c5d", quantity=body["quantity"]), 201


@app.delete("/api/v1/orders/<uuid:order_id>")
def delete_order(order_id):
    return "", 204


@app.get("/api/v1/reports/<int:report_id>")
def report(report_id):
    rows = int(request.args.get("rows", "20"))
    return jsonify(id=report_id, rows=[{"n": i, "v": "xxxxxxxxxx"} for i in range(rows)])


def serve(port, cert, key):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    app.run(host="127.0.0.1", port=port, ssl_context=context, threaded=True)


def drive(port):
    context = ssl._create_unverified_context()
    base = f"https://127.0.0.1:{port}"

    def call(method, path, body=None, headers=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(base + path, data=data, method=method)
        req.add_header("Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJkcml2ZXIifQ.c2lnbmF0dXJl")
        req.add_header("X-Tenant", "tenant-42")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            req.add_header(name, value)
        with urllib.request.urlopen(req, context=context) as res:
            res.read()
            return res.status

    statuses = []
    for i in range(1, 4):
        statuses.append(call("GET", f"/api/v1/users/{100 + i}"))
        statuses.append(call("GET", f"/api/v1/users?limit={i}&since=2024-01-0{i}T00:00:00Z"))
        statuses.append(
            call("POST", "/api/v1/orders", {"sku": f"SKU-{i}", "quantity": i, "note": "gift"})
        )
        statuses.append(call("DELETE", "/api/v1/orders/9b2f4c1e-5d6a-4b7c-8e9f-0a1b2c3d4e5f"))
    print(" ".join(str(s) for s in statuses), flush=True)


def reports(port, normal, rows):
    """`normal` ordinary reports, then one with `rows` rows; prints the last body size."""
    context = ssl._create_unverified_context()
    size = 0
    for i in range(normal + 1):
        n = rows if i == normal else 20
        url = f"https://127.0.0.1:{port}/api/v1/reports/{i + 1}?rows={n}"
        with urllib.request.urlopen(url, context=context) as res:
            size = len(res.read())
    print(size, flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    elif sys.argv[1] == "reports":
        reports(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    else:
        drive(int(sys.argv[2]))
