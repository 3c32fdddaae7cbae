#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# A/B comparison of this tree against another build of mcl (e.g. the commit before a
# refactor), side by side in one run: the same throughput cases, alternating A and B each
# repetition, with raw UDP and raw libzmq next to them, in a private network namespace.
# Prints the medians and the ratios to the raw peers, as docs/performance.md quotes them; the
# raw lines stay in build/bench-ab.raw (RAW=FILE to choose).
#
#   git worktree add /tmp/mcl-before <commit>
#   (cd /tmp/mcl-before && cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release \
#        -DMCL_BUILD_BENCH=ON -DMCL_BUILD_TESTS=OFF && cmake --build build/release -j2)
#   scripts/bench-ab.sh /tmp/mcl-before/build/release      REPS=7 scripts/bench-ab.sh DIR
set -euo pipefail
cd "$(dirname "$0")/.."
other=${1:?usage: scripts/bench-ab.sh OTHER_BUILD_DIR (with bench/mcl-bench-throughput)}
reps=${REPS:-5}
if [[ "${MCL_NETNS:-}" != 1 ]]; then
    scripts/setup.sh
    cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DMCL_BUILD_BENCH=ON -DMCL_BUILD_TESTS=OFF >/dev/null
    cmake --build build/release -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
    exec scripts/netns.sh "$0" "$@"
fi
a=build/release/bench
b=$other/bench
out=${RAW:-build/bench-ab.raw}
: >"$out"
run() { # run LABEL CMD...: one key=value line, tagged
    local label=$1
    shift
    local line
    line=$(timeout 90 "$@" 2>/dev/null | tail -n 1) || { echo "bench-ab: failed: $*" >&2; return 0; }
    echo "case=$label $line" >>"$out"
}
udp="udp://239.255.91.1:26091?iface=lo&ttl=0"
zmq="zmq+tcp://127.0.0.1:0?hwm=1000"
for size in 64 1024; do
    n=200000
    for _ in $(seq "$reps"); do
        run "raw-udp/$size" $a/mcl-bench-throughput --raw -s $size -n $n
        run "A-udp/$size" $a/mcl-bench-throughput -u "$udp" -s $size -n $n
        run "B-udp/$size" $b/mcl-bench-throughput -u "$udp" -s $size -n $n
        run "raw-zmq/$size" $a/mcl-bench-peers zmq $size $n
        run "A-zmq/$size" $a/mcl-bench-throughput -u "$zmq" -s $size -n $n
        run "B-zmq/$size" $b/mcl-bench-throughput -u "$zmq" -s $size -n $n
        run "A-udp-batched/$size" $a/mcl-bench-throughput -u "$udp&batch=100" -s $size -n $((n * 10))
        run "B-udp-batched/$size" $b/mcl-bench-throughput -u "$udp&batch=100" -s $size -n $((n * 10))
    done
done
awk '
function kv(line, key,   m) { if (match(line, "(^| )" key "=[^ ]+")) { m = substr(line, RSTART, RLENGTH); sub(/^ /, "", m); return substr(m, length(key) + 2) } return "" }
function med(k,   i, j, t, m) { m = n[k]; for (i = 1; i <= m; i++) a[i] = v[k, i]; for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t } return a[int((m + 1) / 2)] }
{ k = kv($0, "case"); n[k]++; v[k, n[k]] = kv($0, "msgs_per_s") + 0; l[k] += kv($0, "loss_pct") + 0 }
END {
  print "| case | size | A (this tree) msgs/s | B (other) msgs/s | A / B | A / raw | B / raw |"
  print "|---|---|---|---|---|---|---|"
  split("64 1024", sizes, " "); split("udp zmq udp-batched", kinds, " ")
  for (si = 1; si <= 2; si++) for (ki = 1; ki <= 3; ki++) {
    s = sizes[si]; t = kinds[ki]; ka = "A-" t "/" s; kb = "B-" t "/" s
    kr = (t == "zmq" ? "raw-zmq/" : "raw-udp/") s
    if (!(ka in n) || !(kb in n)) continue
    ma = med(ka); mb = med(kb); mr = (kr in n) ? med(kr) : 0
    ab = (mb > 0) ? sprintf("%.2f", ma / mb) : "-"
    ar = (mr > 0) ? sprintf("%.2f", ma / mr) : "-"; br = (mr > 0) ? sprintf("%.2f", mb / mr) : "-"
    printf "| %s | %d | %.0f | %.0f | %s | %s | %s |\n", t, s, ma, mb, ab, ar, br }
  print ""; print "medians of " n["A-udp/64"] " runs; raw rows: raw UDP syscalls and raw libzmq XPUB/SUB (bench/peers.c)"
}' "$out"
