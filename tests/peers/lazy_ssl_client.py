"""Starts without ssl, imports it only after a delay, then makes one HTTPS GET.

Usage: lazy_ssl_client.py PORT PATH DELAY_SECONDS  — prints "<status> <body bytes>".
"""
import sys
import time


def main():
    port, path, delay = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    assert "ssl" not in sys.modules
    time.sleep(delay)
    import http.client
    import ssl

    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ssl._create_unverified_context())
    conn.request("GET", path)
    resp = conn.getresponse()
    print(resp.status, len(resp.read()))


if __name__ == "__main__":
    main()
