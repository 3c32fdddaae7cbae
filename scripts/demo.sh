#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The live demo: installs what the build needs (scripts/setup.sh --build), builds the library
# and the tools into build/demo (nothing else: no tests, benchmarks or examples), then, in a
# private network namespace (scripts/netns.sh), runs mcl-sim (simulated sensor messages)
# while mcl-dump shows what arrives and counts it; an RPC service (mcl-call --serve-demo)
# listed and called; a recording served while it is made (mcl-log --serve); mcl-stat's table.
# It ends with where the tools are and commands to try.
#
#   scripts/demo.sh [SECONDS]     how long each simulation runs (1 to 60, default 4)
#
# Every step is bounded in time: the demo takes about SECONDS + 7 s after the build.
# Output fits 100 columns (mcl-dump cuts its lines to the terminal, or to --columns 100).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-4}
if ! [[ $secs =~ ^[0-9]+$ ]] || ((secs < 1 || secs > 60)); then
    echo "usage: scripts/demo.sh [SECONDS]   (1 to 60, default 4)" >&2
    exit 2
fi
build=build/demo
bin=$PWD/$build/cmd

if [[ "${MCL_NETNS:-}" != 1 ]]; then
    scripts/setup.sh --build
    # Configure and build, the output in a log; on a terminal one line that counts up.
    mkdir -p "$build"
    log=$build/build.log
    : >"$log"
    tty=0
    [[ -t 1 ]] && tty=1
    started=$SECONDS
    echo "demo: configuring $build (log: $log)"
    # Warnings stay warnings here (a newer compiler's new warning must not stop a newcomer;
    # scripts/test.sh builds with -Werror).
    if ! cmake -S . -B "$build" -G "Unix Makefiles" -DCMAKE_BUILD_TYPE=Release -DMCL_WERROR=OFF \
        -DMCL_BUILD_TESTS=OFF -DMCL_BUILD_BENCH=OFF -DMCL_BUILD_EXAMPLES=OFF >>"$log" 2>&1; then
        echo "demo: configuring failed; the end of $log:" >&2
        tail -n 20 "$log" >&2
        exit 1
    fi
    jobs=$(nproc 2>/dev/null || echo 2)
    # Only cmd/ (the tools, and libmcl they link; not the static test library). The files to
    # compile, from a dry run, then one "Building C object" line of make's per file compiled.
    total=$(make -C "$build/cmd" -n --no-print-directory 2>/dev/null | grep -c 'Building C object' || true)
    if ((total > 0)); then
        echo "demo: building the library and the tools: $total files to compile ($jobs jobs)"
    else
        echo "demo: checking the build (up to date)"
    fi
    progress() {
        local line n=0
        while IFS= read -r line; do
            printf '%s\n' "$line" >>"$log"
            if [[ $line == *"Building C object"* ]]; then
                ((n < total)) && n=$((n + 1))
                ((tty)) && printf '\r\033[Kdemo: building mcl (%d/%d), %d s...' "$n" "$total" $((SECONDS - started))
            fi
        done
        ((tty)) && printf '\r\033[K'
        return 0
    }
    if ! make -C "$build/cmd" -j"$jobs" --no-print-directory 2>&1 | progress; then
        echo "demo: the build failed; the end of $log:" >&2
        grep -E 'error|Error' "$log" | tail -n 20 >&2 || tail -n 20 "$log" >&2
        exit 1
    fi
    echo "demo: built in $((SECONDS - started)) s: the tools are in $bin"
    exec scripts/netns.sh "$0" "$@"
fi

# Inside the private network namespace from here on.
export PATH="$bin:$PATH"
url="udp://239.255.26.1:26000?iface=lo&ttl=0"
cols=()
[[ -t 1 ]] || cols=(--columns 100) # on a terminal, mcl-dump fits its width by itself
tmp=$(mktemp -d)
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
# Waits (at most 5 s) for TEXT in FILE: a program says it is ready.
wait_for() {
    local i
    for i in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
    return 1
}
# Shows a command as it can be typed (quoted where the shell needs it), runs it, and shows a
# failure's exit status. show_fit: the same, its output folded at 100 columns.
quoted() {
    local a out=()
    for a in "$@"; do
        if [[ $a =~ ^[A-Za-z0-9_./:=+,@%-]+$ ]]; then out+=("$a"); else out+=("'${a//\'/\'\\\'\'}'"); fi
    done
    echo "\$ ${out[*]}"
}
show() { quoted "$@"; "$@" || echo "(exit status $?)"; echo; }
show_fit() {
    quoted "$@"
    "$@" | fold -s -w 100
    local st=${PIPESTATUS[0]}
    ((st == 0)) || echo "(exit status $st)"
    echo
}

echo
echo "demo: mcl-sim publishes simulated sensors for $secs s on $url:"
echo "demo: IMU 100 Hz, GNSS 10 Hz, wheel speeds 50 Hz, 128 KiB camera frames 5 Hz and"
echo "demo: 60 KiB lidar scans 10 Hz (mcl-sim --list). One mcl-dump prints the first 15 messages"
echo "demo: (one line each: time, topic, size, publisher/seq, fields); another counts them all."
echo
mcl-dump -u "$url" -n 15 --timeout "$((secs + 1))" -v "${cols[@]}" 2>"$tmp/first.err" &
first=$!
mcl-dump -u "$url" -q --stats --timeout "$((secs + 1))" -v "${cols[@]}" 2>"$tmp/stats.err" &
counter=$!
pids+=("$first" "$counter")
wait_for "$tmp/first.err" "listening on" || true
wait_for "$tmp/stats.err" "listening on" || true
mcl-sim -u "$url" -d "$secs" 2>"$tmp/sim.log" || true
wait "$first" || true
wait "$counter" || true
echo
echo "demo: what the second mcl-dump counted (mcl-dump -q --stats): per publisher, then per topic"
echo
grep -v "listening on" "$tmp/stats.err" || true
echo
echo "demo: and what mcl-sim sent:"
echo
cat "$tmp/sim.log"

# RPC: a demo service, its published methods, a call, a call refused before sending, a deadline.
if mcl-call --help | grep -q serve-demo; then
    mcl-call --serve-demo "zmq+tcp://127.0.0.1:0" >"$tmp/srv" 2>/dev/null &
    rpc=$!
    pids+=("$rpc")
    wait_for "$tmp/srv" "serving demo on" || true
    u=$(sed -n 's/^serving demo on //p' "$tmp/srv")
    if [[ -n "$u" ]]; then
        echo
        echo "demo: an RPC service on $u (mcl-call --serve-demo), called with mcl-call:"
        echo
        show_fit mcl-call "$u" --list
        show mcl-call "$u" calc.add '{"a": 1.5, "b": 2}'
        show mcl-call "$u" calc.add '{"a": 1.5, "b": "two"}'
        show mcl-call --timeout 200 "$u" demo.sleep '{"ms": 2000}'
        echo "demo: the service counted one calc.add: the refused call was never sent"
        echo
        show mcl-call --pretty "$u" rpc.stats '{"method": "calc.add"}'
    fi
    kill "$rpc" 2>/dev/null || true
    wait "$rpc" 2>/dev/null || true
fi

# Streams: a recording served while it is made (mcl-log --serve), listed, read with a filter,
# and followed live from the other end of a connection.
rec=$tmp/rec
mkdir -p "$rec"
mcl-log -u "$url" -o "$rec/drive.mcllog" --duration "$((secs + 15))" \
    --serve "zmq+tcp://127.0.0.1:0" 2>"$tmp/log.err" &
logp=$!
pids+=("$logp")
wait_for "$tmp/log.err" "serving" || true
loc=$(sed -n 's/^mcl-log: serving //p' "$tmp/log.err" | head -1)
if [[ -n "$loc" ]]; then
    echo
    echo "demo: mcl-log records a simulation into drive.mcllog and serves it as"
    echo "demo: $loc;"
    echo "demo: while it records, the recording is followed, listed and filtered remotely:"
    echo
    mcl-sim -u "$url" -d "$((secs < 2 ? secs : 2))" -q &
    sim=$!
    pids+=("$sim")
    show mcl-dump -f "$loc" -F -t gnss -n 5 --timeout "$((secs + 5))" "${cols[@]}"
    wait "$sim" || true
    show mcl-dump --list "${loc%/*}"
    show mcl-dump -f "$loc" -t wheels --start 1 -n 3 "${cols[@]}"
fi
kill "$logp" 2>/dev/null || true
wait "$logp" 2>/dev/null || true

# What is on the bus: mcl-stat's table (it prints one instead of the live screen when its
# output is no terminal), the topics with their rates and the publisher's program from its
# heartbeats.
echo
echo "demo: mcl-stat watches the bus for 3 s while mcl-sim runs (on a terminal, without"
echo "demo: --once, it is a live screen: s sorts, / filters, Enter shows publishers, q quits):"
echo
mcl-sim -u "$url" -d 5 -q &
sim=$!
pids+=("$sim")
show mcl-stat -u "$url" --once 3
kill "$sim" 2>/dev/null || true
wait "$sim" 2>/dev/null || true

cat <<EOF

What next
  The tools are in $bin
  (cmake --install puts them in PREFIX/bin). To run them by name in this shell:

    export PATH="$bin:\$PATH"

  Then try these (the default connection, $url,
  keeps every datagram on this machine):

    mcl-sim -d 120 -q &                     # simulated sensors for 2 minutes, in the background
    mcl-stat                                # a live monitor, one row per topic (q quits)
    mcl-dump -t gnss -n 5                   # the next 5 GNSS fixes, one line each
    mcl-log -o drive.mcllog --duration 5    # record everything for 5 s
    mcl-stat -f drive.mcllog                # what the recording holds: topics, rates, sizes
    mcl-dump -f drive.mcllog -t 'lidar/*' -n 3          # 3 lidar scans from it

  Every tool has -h (--help); README.md has more, docs/ the details.
EOF
