"""gRPC peer for the end-to-end tests, on Debian's python3-grpcio (system libssl), without
generated stubs: requests and replies are raw bytes.

  grpc_peer.py serve PORT CERT KEY
  grpc_peer.py call PORT CERT [--repeat N --pause S]   unary, streaming, error; prints results
"""

import sys
import time

import grpc

SERVICE = "demo.Greeter"


def say_hello(request, context):
    if request == b"nobody":
        context.abort(grpc.StatusCode.NOT_FOUND, "no such user: nobody")
    return b"hello " + request


def list_hellos(request, context):
    for word in (b"one", b"two", b"three"):
        yield word + b" " + request


def serve(port, cert, key):
    with open(cert, "rb") as c, open(key, "rb") as k:
        creds = grpc.ssl_server_credentials([(k.read(), c.read())])
    from concurrent import futures

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "SayHello": grpc.unary_unary_rpc_method_handler(say_hello),
            "ListHellos": grpc.unary_stream_rpc_method_handler(list_hellos),
        },
    )
    server.add_generic_rpc_handlers((handler,))
    server.add_secure_port(f"127.0.0.1:{port}", creds)
    server.start()
    server.wait_for_termination()


def call(port, cert, repeat=1, pause=0.0):
    with open(cert, "rb") as c:
        creds = grpc.ssl_channel_credentials(root_certificates=c.read())
    options = (("grpc.ssl_target_name_override", "localhost"),)
    with grpc.secure_channel(f"127.0.0.1:{port}", creds, options=options) as channel:
        hello = channel.unary_unary(f"/{SERVICE}/SayHello")
        stream = channel.unary_stream(f"/{SERVICE}/ListHellos")
        for i in range(repeat):
            print(hello(b"alice", timeout=10).decode(), flush=True)
            print(len(list(stream(b"bob", timeout=10))), flush=True)
            try:
                hello(b"nobody", timeout=10)
            except grpc.RpcError as e:
                print(e.code().name, e.details(), flush=True)
            if i + 1 < repeat:
                time.sleep(pause)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    else:
        repeat = int(sys.argv[sys.argv.index("--repeat") + 1]) if "--repeat" in sys.argv else 1
        pause = float(sys.argv[sys.argv.index("--pause") + 1]) if "--pause" in sys.argv else 0.0
        call(int(sys.argv[2]), sys.argv[3], repeat, pause)
