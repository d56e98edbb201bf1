"""gRPC peer for the end-to-end tests, on Debian's python3-grpcio (system libssl), without
generated stubs: requests and replies are protobuf messages with one string field (1: name),
encoded by hand.

  grpc_peer.py serve PORT CERT KEY
  grpc_peer.py call PORT CERT [--repeat N --pause S]   unary, streaming, error; prints results
  grpc_peer.py call PORT CERT --name NAME              one SayHello with NAME
"""

import sys
import time

import grpc

SERVICE = "demo.Greeter"


def pb(text):
    """{1: text} in protobuf wire format (short strings: one-byte length)."""
    data = text.encode()
    return b"\x0a" + bytes([len(data)]) + data


def unpb(message):
    return message[2 : 2 + message[1]].decode() if len(message) >= 2 else ""


def say_hello(request, context):
    name = unpb(request)
    if name == "nobody":
        context.abort(grpc.StatusCode.NOT_FOUND, "no such user: nobody")
    return pb("hello " + name)


def list_hellos(request, context):
    for word in ("one", "two", "three"):
        yield pb(word + " " + unpb(request))


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


def call(port, cert, repeat=1, pause=0.0, name=None):
    with open(cert, "rb") as c:
        creds = grpc.ssl_channel_credentials(root_certificates=c.read())
    options = (("grpc.ssl_target_name_override", "localhost"),)
    with grpc.secure_channel(f"127.0.0.1:{port}", creds, options=options) as channel:
        hello = channel.unary_unary(f"/{SERVICE}/SayHello")
        stream = channel.unary_stream(f"/{SERVICE}/ListHellos")
        if name is not None:
            print(unpb(hello(pb(name), timeout=10)), flush=True)
            return
        for i in range(repeat):
            print(unpb(hello(pb("alice"), timeout=10)), flush=True)
            print(len(list(stream(pb("bob"), timeout=10))), flush=True)
            try:
                hello(pb("nobody"), timeout=10)
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
        name = sys.argv[sys.argv.index("--name") + 1] if "--name" in sys.argv else None
        call(int(sys.argv[2]), sys.argv[3], repeat, pause, name)
