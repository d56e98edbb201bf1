#!/usr/bin/env bash
# Re-records tls_mixed.rec (needed whenever a record struct changes: replay refuses recordings of
# another layout). As root, with nginx serving 100 B and 16 KiB files over TLS on $NGINX_PORT
# (`cargo xtask bench overhead` builds such a setup) and this repository's python TLS server:
#   NGINX_PORT=19443 CERT=cert.pem KEY=key.pem agent/benches/corpus/record.sh
# 400 GETs of the 100 B file and 40 of the 16 KiB file on one curl connection each, and 20 POSTs
# of 20 KiB to the python server: 920 exchanges counting both sides.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root="$here/../../.."
agent="$root/target/release/cleartap"
out="$here/tls_mixed.rec"
"$agent" --record-raw "$out" > /dev/null 2> /tmp/record-corpus.log &
agent_pid=$!
sleep 3
small=(); for i in $(seq 1 400); do small+=("https://127.0.0.1:$NGINX_PORT/small?i=$i"); done
curl -sk "${small[@]}" -o /dev/null > /dev/null
big=(); for i in $(seq 1 40); do big+=("https://127.0.0.1:$NGINX_PORT/big16k?j=$i"); done
curl -sk "${big[@]}" > /dev/null
/usr/bin/python3 "$root/tests/peers/tls_http_server.py" 19555 "$CERT" "$KEY" &
py=$!
sleep 1
body=$(mktemp); head -c 20000 /dev/zero | tr '\0' 'q' > "$body"
for i in $(seq 1 20); do
  curl -sk -X POST --data-binary @"$body" -H 'Content-Type: application/octet-stream' \
    "https://127.0.0.1:19555/upload?n=$i" > /dev/null
done
sleep 0.5
kill "$py"; kill -TERM "$agent_pid"; wait "$agent_pid" || true
rm -f "$body"
grep "exit summary" /tmp/record-corpus.log
