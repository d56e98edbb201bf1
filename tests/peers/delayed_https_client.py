"""Starts, loads Python's ssl (and so libssl) at once, waits, then makes one HTTPS GET.

Used to check that a library first mapped by a process started after the agent is attached
within the wait. Usage: delayed_https_client.py PORT PATH DELAY_SECONDS
"""
import http.client
import ssl
import sys
import time


def main():
    port, path, delay = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    ctx = ssl._create_unverified_context()
    time.sleep(delay)
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx)
    conn.request("GET", path)
    resp = conn.getresponse()
    print(resp.status, len(resp.read()))
    conn.close()


if __name__ == "__main__":
    main()
