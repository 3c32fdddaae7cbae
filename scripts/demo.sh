#!/usr/bin/env bash
# The live demo: sets everything up, builds, and in a private network namespace runs mcl-sim
# (simulated sensor messages) while mcl-dump decodes and shows what arrives; then an RPC
# service (mcl-call --serve-demo) listed and called by mcl-call.
#
#   scripts/demo.sh [SECONDS]     (default 4)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-4}

scripts/setup.sh
build=build/release
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DMCL_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" >/dev/null

if [[ "${MCL_NETNS:-}" != 1 ]]; then
    exec scripts/netns.sh "$0" "$@"
fi

bin=$build/cmd
url="udp://239.255.26.1:26000?iface=lo&ttl=0"
echo "demo: mcl-sim publishes simulated sensors (IMU 100 Hz, GNSS 10 Hz, wheel speeds 50 Hz,"
echo "demo: 128 KiB camera frames 5 Hz, 60 KiB lidar scans 10 Hz) on $url for $secs s;"
echo "demo: mcl-dump decodes and prints them, then its per-publisher statistics"
echo

err=$(mktemp)
trap 'rm -f "$err"' EXIT
"$bin/mcl-dump" -u "$url" --timeout "$((secs + 1))" --stats -v 2>"$err" &
dump=$!
# Start publishing once the listener has joined (it says so; bounded wait).
for _ in $(seq 100); do grep -q "listening on" "$err" 2>/dev/null && break; sleep 0.05; done

simlog=$(mktemp)
trap 'rm -f "$err" "$simlog"' EXIT
"$bin/mcl-sim" -u "$url" -d "$secs" 2>"$simlog"
wait $dump
echo
echo "mcl-dump statistics:"
grep -v "listening on" "$err" || true
echo
cat "$simlog"

# RPC: a demo service, its published methods, a call, a call refused before sending, a deadline.
if [[ -x "$bin/mcl-call" ]] && "$bin/mcl-call" --help | grep -q serve-demo; then
    srv=$(mktemp)
    trap 'rm -f "$err" "$simlog" "$srv"; [[ -n "${rpc:-}" ]] && kill "$rpc" 2>/dev/null' EXIT
    "$bin/mcl-call" --serve-demo "zmq+tcp://127.0.0.1:0" >"$srv" 2>/dev/null &
    rpc=$!
    for _ in $(seq 100); do grep -q "serving demo on" "$srv" 2>/dev/null && break; sleep 0.05; done
    u=$(sed -n 's/^serving demo on //p' "$srv")
    if [[ -n "$u" ]]; then
        show() { echo "\$ $*"; "$@" || echo "(exit status $?)"; echo; }
        echo
        echo "demo: an RPC service on $u (mcl-call --serve-demo), called with mcl-call:"
        echo
        show "$bin/mcl-call" "$u" --list
        show "$bin/mcl-call" "$u" calc.add '{"a": 1.5, "b": 2}'
        show "$bin/mcl-call" "$u" calc.add '{"a": 1.5, "b": "two"}'
        show "$bin/mcl-call" --timeout 200 "$u" demo.sleep '{"ms": 2000}'
        show "$bin/mcl-call" --json "$u" rpc.stats '{"method": "calc.add"}'
    fi
    kill "$rpc" 2>/dev/null
    wait "$rpc" 2>/dev/null || true
    rpc=
fi

# Streams: a recording served while it is made (mcl-log --serve), listed, read with a filter,
# and followed live from the other end of a connection.
if "$bin/mcl-log" --help | grep -q -- --serve; then
    rec=$(mktemp -d)
    lg=$(mktemp)
    trap 'rm -rf "$err" "$simlog" "${srv:-}" "$rec" "$lg"; [[ -n "${logp:-}" ]] && kill "$logp" 2>/dev/null' EXIT
    "$bin/mcl-log" -u "$url" -o "$rec/drive.mcllog" --serve "zmq+tcp://127.0.0.1:0" 2>"$lg" &
    logp=$!
    for _ in $(seq 100); do grep -q "serving" "$lg" 2>/dev/null && break; sleep 0.05; done
    loc=$(sed -n 's/^mcl-log: serving //p' "$lg" | head -1)
    if [[ -n "$loc" ]]; then
        base=${loc%/*}
        echo
        echo "demo: mcl-log records the simulation into $rec/drive.mcllog and serves it as $loc;"
        echo "demo: while it records, the recording is listed, filtered and followed remotely:"
        echo
        "$bin/mcl-sim" -u "$url" -d "$secs" -q &
        sim=$!
        # Follow the recording live: the first 5 GNSS fixes, as they are recorded.
        show() { echo "\$ $*"; "$@" || echo "(exit status $?)"; echo; }
        show "$bin/mcl-dump" -f "$loc" -F -t gnss -n 5 --timeout "$((secs + 5))"
        wait "$sim" || true
        show "$bin/mcl-dump" --list "$base"
        show "$bin/mcl-dump" -f "$loc" -t wheels --start 1 -n 3
    fi
    kill "$logp" 2>/dev/null
    wait "$logp" 2>/dev/null || true
    logp=
fi


# What is on the bus: mcl-stat's table (it prints one instead of the live screen when its
# output is no terminal), the topics with their rates and the publisher's program from its
# heartbeats.
if [[ -x "$bin/mcl-stat" ]]; then
    echo
    echo "demo: mcl-stat watches the bus for 3 s while mcl-sim runs (run it in a terminal for"
    echo "demo: the live screen: s sorts, / filters, Enter shows a topic's publishers, q quits):"
    echo
    "$bin/mcl-sim" -u "$url" -d 5 -q &
    sim=$!
    echo "\$ mcl-stat -u $url --once 3"
    "$bin/mcl-stat" -u "$url" --once 3 || echo "(exit status $?)"
    wait "$sim" || true
fi
