"""Builds benign_api.jsonl.gz: ordinary API requests made of real-world values, for the
false-positive bar of the injection rules (agent/tests/detect_corpus.rs). Nothing here is taken
from the detector's own patterns; the values come from:

- Faker (PyPI `Faker`, MIT): people's names in twelve locales (Irish and French ones carry
  apostrophes, others non-Latin scripts), addresses, companies, English words and sentences,
  URLs, file paths, e-mail addresses, phone numbers, dates;
- fake-useragent (PyPI `fake-useragent`, Apache-2.0): 6,936 User-Agent strings seen in real
  browsers;
- CPython's own standard library source (3-8 line snippets of a few pure modules), as
  the code a snippet or review API receives.

Deterministic for a given Faker/fake-useragent version (pinned below) and seed:

  python3 -m venv /tmp/v && /tmp/v/bin/pip install Faker==40.63.0 fake-useragent==2.2.0
  /tmp/v/bin/python3 agent/tests/corpus/benign/generate.py
"""

import gzip
import inspect
import json
import os
import random
import urllib.parse

import fake_useragent
from faker import Faker

SEED = 20261129
COUNT = 12_000
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "benign_api.jsonl.gz")

LOCALES = ["en_US", "en_IE", "en_GB", "fr_FR", "de_DE", "es_ES", "it_IT", "ja_JP", "zh_CN",
           "ru_RU", "el_GR", "ar_AA"]
# Modules whose source is ordinary code (no SQL, no shell), for snippets in JSON bodies.
CODE_MODULES = ["textwrap", "colorsys", "fractions", "statistics", "difflib", "string",
                "calendar", "bisect", "heapq", "shlex", "json.encoder", "html", "ipaddress"]


def user_agents():
    path = os.path.join(os.path.dirname(fake_useragent.__file__), "data", "browsers.jsonl")
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)["useragent"] for line in f if line.strip()]


def code_snippets(rng):
    snippets = []
    for name in CODE_MODULES:
        module = __import__(name, fromlist=["_"])
        lines = [l for l in inspect.getsource(module).splitlines() if l.strip()]
        for start in range(0, max(len(lines) - 8, 1), 9):
            snippets.append("\n".join(lines[start:start + rng.randint(3, 8)]))
    return snippets


def main():
    rng = random.Random(SEED)
    Faker.seed(SEED)
    fakes = {loc: Faker(loc) for loc in LOCALES}
    en = fakes["en_US"]
    uas = user_agents()
    snippets = code_snippets(rng)

    def person():
        f = fakes[rng.choice(LOCALES)]
        return f.first_name(), f.last_name(), f

    def headers(json_body=False):
        h = {
            "host": "api.shop.example",
            "user-agent": rng.choice(uas),
            "accept": rng.choice(["application/json", "*/*", "application/json, text/plain, */*"]),
            "accept-language": rng.choice(["en-US,en;q=0.9", "fr-FR,fr;q=0.8,en;q=0.5",
                                           "ja,en-US;q=0.7", "de-DE", "zh-CN,zh;q=0.9"]),
        }
        if rng.random() < 0.5:
            h["referer"] = en.url() + en.uri_path() + "?" + urllib.parse.urlencode(
                {"q": en.word(), "utm_source": en.domain_word()})
        if rng.random() < 0.6:
            h["cookie"] = "; ".join([
                f"session={en.hexify('^' * 32)}",
                f"theme={rng.choice(['dark', 'light'])}",
                f"locale={rng.choice(LOCALES)}",
                f"last_search={urllib.parse.quote(en.sentence(nb_words=3))}",
            ])
        if rng.random() < 0.3:
            h["x-forwarded-for"] = f"{en.ipv4_public()}, {en.ipv4_public()}"
        if rng.random() < 0.3:
            h["x-request-id"] = en.uuid4()
        if json_body:
            h["content-type"] = "application/json"
        return h

    def search():
        words = " ".join(en.words(nb=rng.randint(1, 4)))
        kind = rng.random()
        if kind < 0.25:
            words = f'"{words}"'
        elif kind < 0.4:
            words = f"{en.company()} {en.word()}"
        elif kind < 0.5:
            words = en.catch_phrase()
        query = {"q": words, "page": rng.randint(1, 40), "sort": rng.choice(["price", "-date", "name"])}
        return {"method": "GET", "path": "/api/v2/search", "query": urllib.parse.urlencode(query),
                "headers": headers()}

    def create_user():
        first, last, f = person()
        body = {"first_name": first, "last_name": last, "email": f.email(),
                "phone": f.phone_number(), "address": f.address(), "company": f.company(),
                "birthday": str(f.date_of_birth())}
        return {"method": "POST", "path": "/api/v2/users", "headers": headers(True),
                "body": json.dumps(body, ensure_ascii=rng.random() < 0.3)}

    def review():
        paragraphs = [en.paragraph(nb_sentences=rng.randint(1, 4)) for _ in range(rng.randint(1, 3))]
        style = rng.random()
        if style < 0.5:
            html = "".join(
                f"<p>{p.replace(' ', ' <b>', 1).replace('.', '</b>.', 1)}</p>" for p in paragraphs)
            if rng.random() < 0.5:
                html += f'<p>See <a href="{en.url()}">{en.domain_name()}</a></p>'
            text = html
        else:
            text = "\n\n".join(paragraphs)
        first, last, _ = person()
        body = {"author": f"{first} {last}", "rating": rng.randint(1, 5), "title": en.sentence(),
                "body_html" if style < 0.5 else "body": text}
        return {"method": "POST", "path": f"/api/v2/products/{rng.randint(1, 99999)}/reviews",
                "headers": headers(True), "body": json.dumps(body)}

    def files():
        path = en.file_path(depth=rng.randint(1, 4), absolute=rng.random() < 0.5)
        if rng.random() < 0.2:
            path = "C:\\Users\\" + en.user_name() + "\\" + "\\".join(en.words(nb=2)) + "." + en.file_extension()
        query = {"path": path, "download": rng.choice(["true", "false"])}
        return {"method": "GET", "path": "/api/v2/files", "query": urllib.parse.urlencode(query),
                "headers": headers()}

    def snippet():
        body = {"language": "python", "title": en.sentence(nb_words=5),
                "code": rng.choice(snippets), "public": rng.random() < 0.5}
        return {"method": "POST", "path": "/api/v2/snippets", "headers": headers(True),
                "body": json.dumps(body)}

    def urls():
        target = en.url() + en.uri_path() + ("?" + urllib.parse.urlencode({"id": rng.randint(1, 9999),
                                                                          "ref": en.word()})
                                             if rng.random() < 0.5 else "")
        if rng.random() < 0.5:
            query = {"redirect": target, "state": en.hexify("^" * 16)}
            return {"method": "GET", "path": "/api/v2/oauth/callback",
                    "query": urllib.parse.urlencode(query), "headers": headers()}
        body = {"url": target, "events": rng.sample(["order.created", "order.paid", "user.deleted"], 2)}
        return {"method": "POST", "path": "/api/v2/webhooks", "headers": headers(True),
                "body": json.dumps(body)}

    def international():
        f = fakes[rng.choice(["ja_JP", "zh_CN", "ru_RU", "el_GR", "ar_AA", "fr_FR", "de_DE"])]
        query = {"q": f.city(), "name": f.name(), "street": f.street_address()}
        return {"method": "GET", "path": "/api/v2/stores", "query": urllib.parse.urlencode(query),
                "headers": headers()}

    def form_login():
        first, last, f = person()
        form = {"username": f.user_name(), "password": f.password(length=rng.randint(8, 20)),
                "remember": "on", "display_name": f"{first} {last}"}
        h = headers()
        h["content-type"] = "application/x-www-form-urlencoded"
        return {"method": "POST", "path": "/login", "headers": h, "body": urllib.parse.urlencode(form)}

    def order():
        items = [{"sku": en.ean13(), "name": en.catch_phrase(), "qty": rng.randint(1, 5),
                  "price": round(rng.uniform(1, 500), 2)} for _ in range(rng.randint(1, 4))]
        first, last, f = person()
        body = {"items": items, "note": en.sentence() if rng.random() < 0.5 else "",
                "ship_to": {"name": f"{first} {last}", "address": f.address()},
                "coupon": en.bothify("??##-####").upper()}
        return {"method": "POST", "path": "/api/v2/orders", "headers": headers(True),
                "body": json.dumps(body, ensure_ascii=False)}

    def listing():
        query = {"since": str(en.date_this_decade()), "limit": rng.choice([10, 50, 100]),
                 "fields": ",".join(rng.sample(["id", "name", "price", "stock", "tags"], 3)),
                 "filter": f"{rng.choice(['price', 'stock'])}>{rng.randint(0, 100)}"}
        return {"method": "GET", "path": f"/api/v2/categories/{en.slug()}/products",
                "query": urllib.parse.urlencode(query), "headers": headers()}

    kinds = [search, create_user, review, files, snippet, urls, international, form_login, order,
             listing]
    with gzip.open(OUT, "wt", encoding="utf-8", compresslevel=9) as out:
        for i in range(COUNT):
            request = kinds[i % len(kinds)]()
            out.write(json.dumps(request, ensure_ascii=False, sort_keys=True) + "\n")
    print(f"{COUNT} requests written to {OUT}")


if __name__ == "__main__":
    main()
