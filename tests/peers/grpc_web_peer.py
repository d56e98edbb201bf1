"""gRPC-Web over HTTP/1.1 for the end-to-end tests, with sonora (a gRPC-Web implementation
from PyPI) on Debian's python3-grpcio: a WSGI server (wsgiref, plain HTTP/1.1) and sonora's
client. Messages are protobuf {1: name}, encoded by hand (no generated stubs).

  grpc_web_peer.py serve PORT
  grpc_web_peer.py call PORT     unary SayHello("alice") and SayHello("nobody"); prints results
"""

import sys
from wsgiref.simple_server import WSGIRequestHandler, make_server

import grpc
import sonora.client
import sonora.wsgi

SERVICE = "demo.Greeter"


def pb(text):
    data = text.encode()
    return b"\x0a" + bytes([len(data)]) + data


def unpb(message):
    return message[2 : 2 + message[1]].decode() if len(message) >= 2 else ""


def say_hello(request, context):
    name = unpb(request)
    if name == "nobody":
        context.abort(grpc.StatusCode.NOT_FOUND, "no such user: nobody")
    return pb("hello " + name)


class Quiet(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass


def serve(port):
    app = sonora.wsgi.grpcWSGI(None)
    app.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                SERVICE,
                {
                    "SayHello": grpc.unary_unary_rpc_method_handler(
                        say_hello, request_deserializer=bytes, response_serializer=bytes
                    )
                },
            ),
        )
    )
    make_server("127.0.0.1", port, app, handler_class=Quiet).serve_forever()


def call(port):
    with sonora.client.insecure_web_channel(f"http://127.0.0.1:{port}") as channel:
        identity = lambda message: message  # noqa: E731 (raw protobuf bytes)
        hello = channel.unary_unary(f"/{SERVICE}/SayHello", identity, identity)
        print(unpb(hello(pb("alice"))), flush=True)
        try:
            hello(pb("nobody"))
        except grpc.RpcError as e:
            print(e.code().name, e.details(), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    else:
        call(int(sys.argv[2]))
