#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# mcl-bridge throughput, one way: mcl-pub on a multicast group -> mcl-bridge -> zmq+ipc ->
# mcl-dump, in a private network namespace. Prints what arrived, the bridge's counters and the
# time from the first publish to the last message received.
#
#   scripts/bench-bridge.sh [COUNT [SIZE]]      (default 100000 messages of 64 bytes)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
size=${2:-64}
if [[ "${MCL_NETNS:-}" != 1 ]]; then
    scripts/setup.sh
    cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build build/release -j"$(nproc 2>/dev/null || echo 2)" --target mcl-bridge mcl-dump mcl-pub >/dev/null
    exec scripts/netns.sh "$0" "$@"
fi
b=build/release/cmd
d=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$d"' EXIT
udp="udp://239.255.91.1:26091?iface=lo&ttl=0"
$b/mcl-bridge -1 "$udp" "zmq+ipc://$d/out" 2>"$d/bridge.err" &
bridge=$!
$b/mcl-dump -u "zmq+ipc://$d/out" -q --stats -n "$n" --timeout 60 2>"$d/dump.err" &
dump=$!
for _ in $(seq 200); do # until the bridge's zmq output has the dump as its subscriber
    grep -q "1 subscriber" "$d/bridge.err" && break
    sleep 0.05
done
t0=$(date +%s%N)
$b/mcl-pub -u "$udp" -t bench -s "$size" -n "$n" -r 0 -q
wait "$dump" || true
t1=$(date +%s%N)
kill -TERM "$bridge"
wait "$bridge" || true
grep "total:" "$d/dump.err"
grep -- "->" "$d/bridge.err"
awk -v n="$n" -v s="$size" -v ns=$((t1 - t0)) 'BEGIN { printf "%d messages of %s bytes in %.3f s: %.0f msg/s\n", n, s, ns / 1e9, n / (ns / 1e9) }'
