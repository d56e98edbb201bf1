"""An h2c server that accepts `Upgrade: h2c` (RFC 7540 §3.2), on Debian's python3-h2: the
HTTP/1.1 request is answered with 101, then as stream 1 of the HTTP/2 connection; later
streams on the connection are answered too. Every response is `hello h2c\n`.

  h2c_upgrade_server.py PORT
"""

import socket
import sys
import threading

import h2.config
import h2.connection
import h2.events

BODY = b"hello h2c\n"


def respond(conn, stream_id):
    conn.send_headers(
        stream_id,
        [(":status", "200"), ("content-type", "text/plain"), ("content-length", str(len(BODY)))],
    )
    conn.send_data(stream_id, BODY, end_stream=True)


def serve_one(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    settings = b""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"http2-settings":
            settings = value.strip()
    sock.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
    )
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=False))
    conn.initiate_upgrade_connection(settings_header=settings)
    respond(conn, 1)
    sock.sendall(conn.data_to_send())
    pending = rest
    while True:
        if not pending:
            pending = sock.recv(65536)
            if not pending:
                return
        events = conn.receive_data(pending)
        pending = b""
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                respond(conn, event.stream_id)
            elif isinstance(event, h2.events.ConnectionTerminated):
                sock.sendall(conn.data_to_send())
                return
        sock.sendall(conn.data_to_send())


def serve_and_close(sock):
    try:
        serve_one(sock)
    except OSError:
        pass  # the client hung up (curl resets after its last stream)
    finally:
        sock.close()


def main():
    listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
    while True:
        sock, _ = listener.accept()
        threading.Thread(target=serve_and_close, args=(sock,), daemon=True).start()


if __name__ == "__main__":
    main()
