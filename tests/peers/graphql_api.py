"""A GraphQL API on graphene (Debian's python3-graphene) served by Flask over TLS, with
batching (a JSON array of operations); and a client that sends introspection, a batch of
twenty login attempts, and an ordinary query.

  graphql_api.py serve PORT CERT KEY
  graphql_api.py drive PORT
"""

import json
import ssl
import sys
import urllib.request

import graphene
from flask import Flask, jsonify, request


class User(graphene.ObjectType):
    id = graphene.Int()
    name = graphene.String()


class Query(graphene.ObjectType):
    user = graphene.Field(User, id=graphene.Int())

    def resolve_user(self, info, id):
        return User(id=id, name=f"user{id}")


class Login(graphene.Mutation):
    class Arguments:
        user = graphene.String()
        password = graphene.String()

    ok = graphene.Boolean()

    def mutate(self, info, user, password):
        return Login(ok=password == "s3cret-9")


class Mutation(graphene.ObjectType):
    login = Login.Field()


schema = graphene.Schema(query=Query, mutation=Mutation)
app = Flask(__name__)


def run(item):
    result = schema.execute(item.get("query", ""), operation_name=item.get("operationName"))
    out = {"data": result.data}
    if result.errors:
        out["errors"] = [str(e) for e in result.errors]
    return out


@app.post("/graphql")
def graphql():
    body = request.get_json()
    if isinstance(body, list):
        return jsonify([run(item) for item in body])
    return jsonify(run(body))


def serve(port, cert, key):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    app.run(host="127.0.0.1", port=port, ssl_context=context)


def drive(port):
    context = ssl._create_unverified_context()

    def post(body):
        req = urllib.request.Request(
            f"https://127.0.0.1:{port}/graphql",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, context=context) as res:
            return json.loads(res.read())

    intro = post({"query": "query IntrospectionQuery { __schema { queryType { name } types { name } } }"})
    batch = post(
        [
            {"query": f'mutation Login{i} {{ login(user: "admin", password: "guess-{i}") {{ ok }} }}'}
            for i in range(20)
        ]
    )
    user = post({"query": "query GetUser { user(id: 7) { id name } }"})
    print(
        intro["data"]["__schema"]["queryType"]["name"],
        len(batch),
        user["data"]["user"]["name"],
        flush=True,
    )


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    else:
        drive(int(sys.argv[2]))
