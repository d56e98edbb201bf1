"""The measurement behind INJ-*'s engine choice: libmodsecurity 3 + the OWASP Core Rule Set
(Debian's packages) on cleartap's own corpora, through libmodsecurity's C API (ctypes). Per
request, an intervention (CRS anomaly-score blocking at the given paranoia level) counts as
detected or flagged. Prints the share per corpus and µs per request (p50, p99).

  apt-get install libmodsecurity3 modsecurity-crs
  PL=1 python3 tools/crs_compare.py [PYTHON_WITH_SQLMAP]

The sqlmap requests are rendered by agent/tests/corpus/sqlmap/render.py with the python given
(one that imports sqlmap); without it they are skipped."""
import ctypes, glob, gzip, json, os, sys, time, urllib.parse

lib = ctypes.CDLL("libmodsecurity.so.3")
lib.msc_init.restype = ctypes.c_void_p
lib.msc_create_rules_set.restype = ctypes.c_void_p
lib.msc_new_transaction.restype = ctypes.c_void_p
lib.msc_new_transaction.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
lib.msc_rules_add_file.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p)]
lib.msc_rules_add.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p)]
V=ctypes.c_void_p; C=ctypes.c_char_p; I=ctypes.c_int
lib.msc_process_connection.argtypes=[V,C,I,C,I]
lib.msc_process_uri.argtypes=[V,C,C,C]
lib.msc_add_request_header.argtypes=[V,C,C]
lib.msc_process_request_headers.argtypes=[V]
lib.msc_append_request_body.argtypes=[V,C,ctypes.c_size_t]
lib.msc_process_request_body.argtypes=[V]
lib.msc_intervention.argtypes=[V,V]
lib.msc_transaction_cleanup.argtypes=[V]
lib.msc_rules_add_file.restype=I; lib.msc_rules_add.restype=I
for f in ["msc_process_connection", "msc_process_uri", "msc_add_request_header",
          "msc_process_request_headers", "msc_append_request_body", "msc_process_request_body",
          "msc_intervention", "msc_transaction_cleanup", "msc_process_logging"]:
    getattr(lib, f).restype = ctypes.c_int

class Intervention(ctypes.Structure):
    _fields_ = [("status", ctypes.c_int), ("pause", ctypes.c_int), ("url", ctypes.c_char_p),
                ("log", ctypes.c_char_p), ("disruptive", ctypes.c_int)]

ms = lib.msc_init()
# Matches are logged through a callback; without one libmodsecurity writes each to stderr.
LOG_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)(lambda *_: None)
lib.msc_set_log_cb.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
lib.msc_set_log_cb(ms, ctypes.cast(LOG_CB, ctypes.c_void_p))
rules = lib.msc_create_rules_set()
err = ctypes.c_char_p()
PL = int(os.environ.get("PL", "1"))
base = f"""
SecRuleEngine On
SecRequestBodyAccess On
SecRequestBodyLimit 13107200
SecRequestBodyNoFilesLimit 131072
SecRule REQUEST_HEADERS:Content-Type "(?:application(?:/soap\\+|/)|text/)xml" "id:200000,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=XML"
SecRule REQUEST_HEADERS:Content-Type "application/json" "id:200001,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON"
SecAuditEngine Off
SecDebugLogLevel 0
SecAction "id:900000,phase:1,nolog,pass,t:none,setvar:tx.paranoia_level={PL}"
""".encode()
assert lib.msc_rules_add(rules, base, ctypes.byref(err)) >= 0, err.value
for path in ["/etc/modsecurity/crs/crs-setup.conf"] + sorted(glob.glob("/usr/share/modsecurity-crs/rules/*.conf")):
    n = lib.msc_rules_add_file(rules, path.encode(), ctypes.byref(err))
    assert n >= 0, (path, err.value)

def judge(method, target, headers, body=b""):
    t = lib.msc_new_transaction(ms, rules, None)
    lib.msc_process_connection(t, b"198.51.100.7", 40000, b"127.0.0.1", 443)
    lib.msc_process_uri(t, target.encode("utf-8", "surrogateescape"), method.encode(), b"1.1")
    for k, v in headers.items():
        lib.msc_add_request_header(t, k.encode(), str(v).encode("utf-8", "surrogateescape"))
    lib.msc_process_request_headers(t)
    if body:
        lib.msc_append_request_body(t, body, len(body))
    lib.msc_process_request_body(t)
    it = Intervention(status=200)
    hit = lib.msc_intervention(t, ctypes.cast(ctypes.byref(it), ctypes.c_void_p)) and it.status >= 400
    lib.msc_transaction_cleanup(t)
    return bool(hit)

def enc(s):
    return urllib.parse.quote(s, safe="")

def run(name, reqs):
    t0 = time.perf_counter(); hits = 0; times = []
    for r in reqs:
        s = time.perf_counter()
        hits += judge(*r)
        times.append((time.perf_counter() - s) * 1e6)
    times.sort()
    print(f"{name}: {hits}/{len(reqs)} ({100*hits/len(reqs):.1f} %), p50 {times[len(times)//2]:.0f} µs, p99 {times[int(len(times)*0.99)]:.0f} µs per request", flush=True)

H = {"Host": "api.example", "User-Agent": "Mozilla/5.0", "Accept": "*/*"}
corpus = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "agent", "tests", "corpus")
benign = []
with gzip.open(f"{corpus}/benign/benign_api.jsonl.gz", "rt") as f:
    for line in f:
        r = json.loads(line)
        target = r["path"] + ("?" + r["query"] if r.get("query") else "")
        hdrs = {k: v for k, v in r["headers"].items()}
        body = (r.get("body") or "").encode()
        if body: hdrs["content-length"] = str(len(body))
        benign.append((r["method"], target, hdrs, body))
run(f"CRS PL{PL} benign real-world (12,000)", benign)
def lines(p):
    return [l for l in open(p, encoding="utf-8", errors="surrogateescape").read().splitlines() if l.strip() and not l.startswith("#")]
sqli = [l for p in sorted(glob.glob(f"{corpus}/libinjection/sqli-*")) for l in lines(p)]
xss = [l for p in sorted(glob.glob(f"{corpus}/libinjection/xss-*")) for l in lines(p)]
run(f"CRS PL{PL} libinjection sqli", [("GET", "/search?q=" + enc(l), H) for l in sqli[::4]])
run(f"CRS PL{PL} libinjection xss", [("GET", "/search?q=" + enc(l), H) for l in xss])
fp = lines(f"{corpus}/libinjection/false_positives.txt")
run(f"CRS PL{PL} libinjection look-alikes", [("GET", "/search?q=" + enc(l), H) for l in fp])
sm = []
if len(sys.argv) > 1:
    import subprocess
    out = subprocess.run([sys.argv[1], os.path.join(corpus, "sqlmap", "render.py")],
                         capture_output=True, text=True, check=True).stdout
    sm = [json.loads(l) for l in out.splitlines()]
for tech in sorted({r["technique"] for r in sm}):
    run(f"CRS PL{PL} sqlmap {tech}", [("GET", "/items?id=" + enc(r["value"]), H) for r in sm if r["technique"] == tech])
run(f"CRS PL{PL} PATT ssti", [("GET", "/greet?name=" + enc(l), H) for l in lines(f"{corpus}/payloadsallthethings/ssti.fuzz")])
run(f"CRS PL{PL} PATT log4shell (User-Agent)", [("GET", "/", {**H, "User-Agent": l}) for l in lines(f"{corpus}/payloadsallthethings/log4shell.txt")])
for family, file in [("command injection", "command_exec.txt"), ("directory traversal", "directory_traversal.txt"),
                     ("file inclusion", "jhaddix_lfi.txt"), ("xss", "intruders_xss.txt"), ("nosql", "nosql.txt")]:
    run(f"CRS PL{PL} PATT {family}", [("GET", "/api/items?id=" + enc(l), H) for l in lines(f"{corpus}/payloadsallthethings/{file}")])
