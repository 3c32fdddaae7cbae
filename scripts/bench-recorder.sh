#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Recorder loss at full publisher speed: mcl-log (fed by mcl-pub) against lcm-logger (fed by an
# LCM publisher), 64 B, 16 KiB and 1 MiB, in a private network namespace. Also mcl-replay's
# timing error. Installs liblcm-bin (lcm-logger) when missing; its rows are skipped otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${MCL_NETNS:-}" != 1 ]]; then
    scripts/setup.sh
    for p in liblcm-dev liblcm-bin; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null; } || true
    done
    cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DMCL_BUILD_BENCH=ON -DMCL_BUILD_TESTS=OFF >/dev/null
    cmake --build build/release -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
    exec scripts/netns.sh "$0" "$@"
fi
bin=build/release/cmd
peers=build/release/bench/mcl-bench-peers
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
u="udp://239.255.97.1:26198?iface=lo&ttl=0"
lcm_events() { # counts the events of an LCM log (sync word 0xEDA1DA01 before each)
    od -An -v -tx1 -w4 "$1" | tr -d ' ' | grep -c '^eda1da01$' || true
}
echo "| size | messages | mcl-log recorded | mcl-log loss % | lcm-logger recorded | lcm-logger loss % |"
echo "|---|---|---|---|---|---|"
for spec in "64 200000" "16384 20000" "1048576 500"; do
    set -- $spec
    size=$1 n=$2
    "$bin/mcl-log" -u "$u" -o "$tmp/m.mcllog" --force -v 2>"$tmp/m.err" &
    lp=$!
    for _ in $(seq 200); do grep -q "listening on" "$tmp/m.err" && break; sleep 0.025; done
    taskset -c 1 "$bin/mcl-pub" -u "$u" -n "$n" -s "$size" -r 0 -q
    sleep 1 # let the recorder drain the ring before it is told to stop (it would anyway)
    kill -INT $lp
    wait $lp
    got=$("$bin/mcl-dump" -f "$tmp/m.mcllog" --json | wc -l)
    lgot="n/a" lloss="n/a"
    if command -v lcm-logger >/dev/null && [[ -x $peers ]]; then
        lcm-logger --lcm-url="udpm://239.255.93.1:27593?ttl=0" -f "$tmp/l.lcmlog" >/dev/null 2>&1 &
        lc=$!
        sleep 0.5 # lcm-logger has no readiness signal
        taskset -c 1 "$peers" lcmpub "$size" "$n" >/dev/null 2>&1 || true
        sleep 1
        kill -INT $lc
        wait $lc 2>/dev/null || true
        lgot=$(lcm_events "$tmp/l.lcmlog")
        lloss=$(awk -v g="$lgot" -v n="$n" 'BEGIN { printf "%.2f", 100 * (n - g) / n }')
    fi
    printf "| %s | %s | %s | %s | %s | %s |\n" "$size" "$n" "$got" \
        "$(awk -v g="$got" -v n="$n" 'BEGIN { printf "%.2f", 100 * (n - g) / n }')" "$lgot" "$lloss"
done
echo
# Replay timing: a 2 s recording at 500 Hz replayed at speed 1.
"$bin/mcl-log" -u "$u" -o "$tmp/r.mcllog" --force -v 2>"$tmp/r.err" &
lp=$!
for _ in $(seq 200); do grep -q "listening on" "$tmp/r.err" && break; sleep 0.025; done
"$bin/mcl-pub" -u "$u" -n 1000 -s 64 -r 500 -q
kill -INT $lp
wait $lp
"$bin/mcl-replay" -u "udp://239.255.97.2:26199?iface=lo&ttl=0" "$tmp/r.mcllog" 2>&1 | sed 's/^/replay: /'
