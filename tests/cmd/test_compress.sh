#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Compressed messages with the tools (docs/wire-format.md "Compressed messages"): mcl-pub
# --compress and the URL's compress= option; mcl-dump decompresses and counts them in --stats;
# a bad codec is refused with a reason.
#   test_compress.sh BINDIR   (run inside scripts/netns.sh, as ctest does from scripts/test.sh)
set -uo pipefail
bin=${1:?usage: test_compress.sh BINDIR}
pub=$bin/mcl-pub
dump=$bin/mcl-dump
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
. "$(dirname "$0")/lib.sh" # check, wait_for, has
start_dump() { # start_dump NAME ARGS...: mcl-dump in the background, once it has joined
    local name=$1
    shift
    "$dump" -v "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
    eval "${name}_pid=$!"
    wait_for "$tmp/$name.err" "listening on" 5
}

base="udp://239.255.79.7:26170?iface=lo&ttl=0"
# 200 kB of text that compresses well, ending in a line to find.
for i in $(seq 4000); do echo "imu sample $((i % 10)) x=0.5 y=1.25 z=-2"; done >"$tmp/big.txt"
echo "the end" >>"$tmp/big.txt"
size=$(stat -c %s "$tmp/big.txt")

for codec in zstd lz4 zstd:9; do
    start_dump a -u "$base" -n 2 --stats --json --timeout 10
    "$pub" -u "$base" --compress "$codec" -f "$tmp/big.txt" 2>"$tmp/pub.err"
    "$pub" -u "$base" --compress "$codec" -q "small"
    wait "$a_pid"
    check "$codec dump exit" test $? -eq 0
    check "$codec pub says compressed" has "$tmp/pub.err" "compressed 1 of them: $size bytes sent as"
    check "$codec whole size" has "$tmp/a.out" "\"size\":$size"
    check "$codec text intact" has "$tmp/a.out" "the end"
    check "$codec small plain" has "$tmp/a.out" "small"
    check "$codec dump counts one" has "$tmp/a.err" "compressed 1 ("
    check "$codec none undecompressed" has "$tmp/a.err" "undecompressed 0"
done

# The URL option works without --compress, and the summary's ratio is real (< 10 %).
start_dump b -u "$base" -n 1 --stats --timeout 10
"$pub" -u "$base&compress=lz4&compress_min=1k" -f "$tmp/big.txt" 2>"$tmp/pub.err"
wait "$b_pid"
check "url option dump exit" test $? -eq 0
sent=$(sed -n 's/.*sent as \([0-9]*\) .*/\1/p' "$tmp/pub.err")
check "url option ratio" test -n "$sent" -a "${sent:-0}" -gt 0 -a "${sent:-0}" -lt $((size / 10))

# A bridge from a plain group to a compressed one: what it forwards is compressed on B's side
# (forwarded messages keep their publisher and number), and B's listener opens it.
ua="udp://239.255.79.8:26171?iface=lo&ttl=0"
ub="udp://239.255.79.9:26172?iface=lo&ttl=0&compress=zstd"
"$bin/mcl-bridge" --stats 0.2 "$ua" "$ub" 2>"$tmp/bridge.err" &
bp=$!
check "bridge reports" wait_for "$tmp/bridge.err" "B -> A: forwarded" 5
start_dump c -u "$ub" -n 1 --timeout 10 --stats --json
"$pub" -u "$ua" -q -f "$tmp/big.txt"
wait "$c_pid"
check "bridge dump exit" test $? -eq 0
check "bridge whole size" has "$tmp/c.out" "\"size\":$size"
check "bridge compressed on B" has "$tmp/c.err" "compressed 1 ("
kill -TERM "$bp"
wait "$bp"

# A typed array (float32[2048] and uint8[32,32]) published from JSON on a compressed group,
# recorded, read back and replayed onto another group: the same JSON at every step.
python3 - "$tmp/nd.json" <<'PY'
import json, sys
r = [round(10 + (i % 97) / 8.0, 3) for i in range(2048)]
m = [[(x + y) % 256 for x in range(32)] for y in range(32)]
json.dump({"name": "Scan", "r": {"$ndarray": {"dtype": "float32", "shape": [2048], "data": r}},
           "m": {"$ndarray": {"dtype": "uint8", "shape": [32, 32], "data": m}}}, open(sys.argv[1], "w"))
PY
uz="$base&compress=zstd"
"$bin/mcl-log" -v -u "$uz" -o "$tmp/nd.mcllog" 2>"$tmp/log.err" &
log_pid=$!
check "array log listens" wait_for "$tmp/log.err" "listening on" 5
start_dump d -u "$uz" -n 1 --json --stats --timeout 10
"$pub" -u "$uz" -q -j "$(cat "$tmp/nd.json")"
wait "$d_pid"
check "array dump exit" test $? -eq 0
check "array came compressed" has "$tmp/d.err" "compressed 1 ("
check "array arrives unchanged" test "$(jq -c '.msg | del(.timestamp)' "$tmp/d.out")" = "$(jq -c . "$tmp/nd.json")"
for _ in $(seq 200); do # (bounded) until it says it recorded the message
    kill -USR1 "$log_pid" 2>/dev/null
    sleep 0.025
    grep -q " s: 1 messages," "$tmp/log.err" && break
done
kill -INT "$log_pid"
wait "$log_pid"
check "array log exit" test $? -eq 0
"$dump" -f "$tmp/nd.mcllog" --json >"$tmp/f.out" 2>/dev/null
check "array read from the log unchanged" test "$(jq -c .msg "$tmp/f.out")" = "$(jq -c .msg "$tmp/d.out")"
ur="udp://239.255.79.10:26173?iface=lo&ttl=0"
start_dump e -u "$ur" -n 1 --json --timeout 10
"$bin/mcl-replay" -q -u "$ur&compress=lz4" "$tmp/nd.mcllog"
wait "$e_pid"
check "array replay exit" test $? -eq 0
check "array replayed unchanged" test "$(jq -c .msg "$tmp/e.out")" = "$(jq -c .msg "$tmp/d.out")"

# Refused with the reason.
"$pub" -u "$base" --compress gzip -q x 2>"$tmp/err"
check "bad codec exit 2" test $? -eq 2
check "bad codec says" has "$tmp/err" "compress 'gzip' is not zstd"
"$pub" -u "$base&compress=zstd:42" -q x 2>"$tmp/err"
check "bad level exit 2" test $? -eq 2

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
