"""Prints the requests sqlmap would send at --level 3 --risk 2 as JSON lines
{"technique": ..., "title": ..., "value": ...}, rendered from the payload and boundary files of
the installed PyPI `sqlmap` (GPL-2.0; its data stays in its package and is never copied here).
agent/tests/detect_corpus.rs runs it (with CLEARTAP_TEST_PYTHON, which `cargo xtask test` sets
to a venv holding sqlmap).

Each test's <payload> and <comment> go between each matching boundary's <prefix> and <suffix>
(clause and <where> sets intersecting, levels within the limit), after the original value (where
1), a negative number (where 2) or nothing (where 3), as sqlmap's agent.prefixQuery and
suffixQuery do; placeholders get fixed stand-ins for sqlmap's random values. UNION tests get
sqlmap's ORDER BY probes and UNION ALL SELECT with 1 to 10 columns. Deterministic; capped per technique by an even stride.

  python3 render.py [--level 3] [--risk 2] [--per-technique 1500]
"""

import argparse
import json
import os
import xml.etree.ElementTree as ET

import sqlmap

TECHNIQUES = {1: "boolean_blind", 2: "error_based", 3: "inline_query", 4: "stacked_queries",
              5: "time_blind", 6: "union_query"}
ORIGINAL = "1"

STANDINS = {
    "[RANDNUM]": "4721", "[RANDNUM1]": "8312", "[RANDNUM2]": "1596", "[RANDNUM3]": "6043",
    "[RANDNUM4]": "2278", "[RANDNUM5]": "9150", "[RANDSTR]": "qWeR", "[RANDSTR1]": "tYuI",
    "[RANDSTR2]": "oPaS", "[SLEEPTIME]": "5", "[DELIMITER_START]": "qvkpq",
    "[DELIMITER_STOP]": "qzjbq", "[AT_REPLACE]": "@", "[SPACE_REPLACE]": " ",
    "[DOLLAR_REPLACE]": "$", "[HASH_REPLACE]": "#", "[GENERIC_SQL_COMMENT]": "-- -",
    "[ORIGVALUE]": ORIGINAL, "[ORIGINAL]": ORIGINAL, "[DELAYED]": "5",
    "[INFERENCE]": "4721=4721", "[QUERY]": "SELECT 4721", "[CHAR]": "NULL",
    "[COLSTART]": "1", "[COLSTOP]": "3",
}


def numbers(text):
    out = set()
    for part in (text or "").split(","):
        part = part.strip()
        if "-" in part:
            lo, hi = part.split("-")
            out.update(range(int(lo), int(hi) + 1))
        elif part:
            out.add(int(part))
    return out


def fill(text):
    for key, value in STANDINS.items():
        text = text.replace(key, value)
    return text


def union_payloads(char):
    """What sqlmap sends for a UNION test: ORDER BY probes for the column count, then UNION ALL
    SELECT with 1 to 10 columns of its filler, one of them its marker."""
    out = [f"ORDER BY {n}" for n in (1, 4, 10)]
    for n in range(1, 11):
        columns = [char] * n
        columns[n // 2] = "CONCAT(0x71766b7071,0x4b4c6d,0x717a6a6271)"
        out.append("UNION ALL SELECT " + ",".join(columns))
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--level", type=int, default=3)
    parser.add_argument("--risk", type=int, default=2)
    parser.add_argument("--per-technique", type=int, default=1500)
    args = parser.parse_args()
    root = os.path.join(os.path.dirname(sqlmap.__file__), "data", "xml")
    boundaries = []
    for b in ET.parse(os.path.join(root, "boundaries.xml")).getroot().iter("boundary"):
        if int(b.findtext("level")) <= args.level:
            boundaries.append({
                "clause": numbers(b.findtext("clause")), "where": numbers(b.findtext("where")),
                "prefix": b.findtext("prefix") or "", "suffix": b.findtext("suffix") or "",
            })
    rendered = {name: [] for name in TECHNIQUES.values()}
    payload_dir = os.path.join(root, "payloads")
    for name in sorted(os.listdir(payload_dir)):
        for test in ET.parse(os.path.join(payload_dir, name)).getroot().iter("test"):
            if int(test.findtext("level")) > args.level or int(test.findtext("risk")) > args.risk:
                continue
            technique = TECHNIQUES[int(test.findtext("stype"))]
            request = test.find("request")
            payload = request.findtext("payload") or ""
            comment = request.findtext("comment") or ""
            if test.findtext("vector") == "[UNION]":
                char = "NULL" if "NULL" in test.findtext("title") else "4721"
                payloads = union_payloads(char)
            elif payload.strip():
                payloads = [payload]
            else:
                continue
            clause = numbers(test.findtext("clause"))
            for where, payload in ((w, p) for w in numbers(test.findtext("where")) for p in payloads):
                for b in boundaries:
                    if not (b["clause"] & clause or 0 in b["clause"] or 0 in clause):
                        continue
                    if where not in b["where"]:
                        continue
                    body = fill(payload)
                    if where == 3:
                        value = body
                    else:
                        start = ORIGINAL if where == 1 else "-4721"
                        prefix = fill(b["prefix"])
                        glue = "" if technique == "stacked_queries" or body.startswith(";") \
                            or prefix.endswith("(") else " "
                        value = f"{start}{prefix}{glue}{body}"
                    value += fill(comment)
                    if b["suffix"] and not comment:
                        value += " " + fill(b["suffix"])
                    rendered[technique].append({"technique": technique,
                                                "title": test.findtext("title"), "value": value})
    for technique, items in rendered.items():
        unique = list({item["value"]: item for item in items}.values())
        stride = max(1, len(unique) // args.per_technique)
        for item in unique[::stride][:args.per_technique]:
            print(json.dumps(item))


if __name__ == "__main__":
    main()
