#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The lab of docs/broker.md, live: in a private network namespace, mcl-broker and a DAQ writer
# (examples/broker_lab) putting "AnalogInput1" at 200 Hz, read by three consumers that each
# want something else of it:
#   recorder  policy block, buffer 1000: lossless (the writer waits rather than lose a frame)
#   analyser  policy ring, buffer 8, 20 ms per frame: too slow, keeps the newest, drops the rest
#   display   max_rate 1: about one frame a second, the rest never sent
# then the broker's own counters (broker.stats, taken while everyone is still connected), and
# each program's summary.
#
#   scripts/broker_lab.sh [SECONDS]     (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
if ! [[ "$secs" =~ ^[0-9]+$ ]] || ((secs < 1 || secs > 600)); then
    echo "usage: scripts/broker_lab.sh [SECONDS]   (1..600, default 5)" >&2
    exit 2
fi
build=build/release

if [[ "${MCL_NETNS:-}" != 1 ]]; then
    scripts/setup.sh
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DMCL_BUILD_TESTS=OFF >/dev/null
    cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
    exec scripts/netns.sh "$0" "$@"
fi

bin=$build/cmd
lab=$build/examples/broker_lab
tmp=$(mktemp -d)
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

# wait_for FILE TEXT SECONDS: until FILE contains TEXT, at most SECONDS.
wait_for() {
    local i
    for i in $(seq $(($3 * 20))); do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "broker_lab: '$2' did not appear in $3 s:" >&2
    cat "$1" >&2
    return 1
}
# Every program is bounded: at most its run plus this much.
bound=$((secs + 20))

# A small window (frames in flight to a reader) makes the broker's buffer the one that counts
# for a slow reader: with the default 256, a slow analyser would be 256 frames behind first.
timeout "$bound" "$bin/mcl-broker" --window 16 -u tcp://127.0.0.1:0 2>"$tmp/broker" &
broker=$!
pids+=("$broker")
wait_for "$tmp/broker" "listening on" 10
url=$(sed -n 's/^mcl-broker: listening on //p' "$tmp/broker")
echo "broker_lab: mcl-broker listening on $url"

# The channel stays after the writer (--keep) so that the readers get what the broker holds
# for them, and goes 2 s after the last of them (a temporary channel).
timeout "$bound" "$lab" writer "$url" AnalogInput1 200 "$secs" --keep --lifetime-ms 2000 \
    --name daq >"$tmp/writer" 2>&1 &
writer=$!
pids+=("$writer")
wait_for "$tmp/writer" "writing" 10
echo "broker_lab: the DAQ writer puts AnalogInput1 at 200 Hz for $secs s (inactive until a reader comes)"

# The readers outlast the writer by a second: the recorder gets everything the writer put.
rsecs=$((secs + 1))
start_reader() { # start_reader NAME OPTION...
    local name=$1
    shift
    timeout "$bound" "$lab" reader "$url" AnalogInput1 --name "$name" "$@" "$rsecs" \
        >"$tmp/$name" 2>&1 &
    pids+=($!)
    wait_for "$tmp/$name" "reading" 10
}
start_reader recorder --policy block --buffer 1000
start_reader analyser --policy ring --buffer 8 --slow-ms 20
start_reader display --policy ring --buffer 1 --max-rate 1
echo "broker_lab: recorder (block, 1000), analyser (ring, 8, 20 ms a frame), display (max_rate 1) reading"

# The broker's counters, while everyone is connected: mcl-call, when it can select the
# broker's RPC channel (0x4243); otherwise broker_lab's own RPC client on that channel.
wait "$writer" || echo "broker_lab: the writer failed (exit $?)"
echo
if "$bin/mcl-call" --help | grep -q -- '--channel'; then
    echo "\$ mcl-call --channel 0x4243 $url broker.stats"
    timeout 10 "$bin/mcl-call" --pretty --channel 0x4243 "$url" broker.stats || echo "(exit status $?)"
else
    echo "(mcl-call cannot select the broker's RPC channel 0x4243; broker_lab call does)"
    echo "\$ broker_lab call $url broker.stats"
    timeout 10 "$lab" call "$url" broker.stats || echo "(exit status $?)"
fi
echo
echo "\$ broker_lab call $url broker.clients"
timeout 10 "$lab" call "$url" broker.clients || echo "(exit status $?)"

for p in "${pids[@]:2}"; do wait "$p" || echo "broker_lab: a reader failed (exit $?)"; done
echo
grep -v "^writing" "$tmp/writer"
for r in recorder analyser display; do grep -v "^reading" "$tmp/$r"; done
kill -INT "$broker"
wait "$broker" || echo "broker_lab: mcl-broker exited $?"
grep -v "listening on" "$tmp/broker" || true
pids=()
