#!/usr/bin/env bash
# Throughput benchmark: mcl raw broadcaster/listener against raw UDP syscalls (one datagram per
# message: the kernel's limit), in a private network namespace, sender and receiver pinned to
# different cores, each case REPS times (default 3). Prints a Markdown table of medians.
#
#   scripts/bench.sh            REPS=5 scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${REPS:-3}

if [[ "${MCL_NETNS:-}" != 1 ]]; then
    scripts/setup.sh
    cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DMCL_BUILD_BENCH=ON -DMCL_BUILD_TESTS=OFF >/dev/null
    cmake --build build/release -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
    exec scripts/netns.sh "$0" "$@"
fi

bench=build/release/bench/mcl-bench-throughput
raw_out=$(mktemp)
trap 'rm -f "$raw_out"' EXIT
for size in 64 1024 16384 1048576; do
    case $size in 64 | 1024) n=200000 ;; 16384) n=50000 ;; *) n=1000 ;; esac
    for impl in raw mcl; do
        for _ in $(seq "$reps"); do
            if [[ $impl == raw ]]; then
                timeout 60 "$bench" --raw -s $size -n $n >>"$raw_out" || true
            else
                timeout 60 "$bench" -s $size -n $n >>"$raw_out" || true
            fi
        done
    done
done

echo "| size | impl | msgs/s median (min-max) | MB/s | loss % median (max) | ratio to raw UDP |"
echo "|---|---|---|---|---|---|"
awk '
function kv(line, key,   m) { if (match(line, key "=[^ ]+")) return substr(line, RSTART + length(key) + 1, RLENGTH - length(key) - 1); return "" }
{ impl = kv($0, "impl"); size = kv($0, "size"); if (kv($0, "n/a") != "") { na[size] = 1; next }
  k = size SUBSEP impl; n[k]++; r[k, n[k]] = kv($0, "msgs_per_s") + 0; l[k, n[k]] = kv($0, "loss_pct") + 0
  sizes[size] = 1 }
function median(a, k, cnt,   i, j, t, v) { for (i = 1; i <= cnt; i++) v[i] = a[k, i]
  for (i = 1; i <= cnt; i++) for (j = i + 1; j <= cnt; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
  lo = v[1]; hi = v[cnt]; return v[int((cnt + 1) / 2)] }
END {
  split("64 1024 16384 1048576", order, " ")
  for (o = 1; o <= 4; o++) { s = order[o]
    kr = s SUBSEP "raw-udp"; km = s SUBSEP "mcl"
    rawmed = (kr in n) ? median(r, kr, n[kr]) : 0
    if (kr in n) { med = median(r, kr, n[kr]); rlo = lo; rhi = hi; lmed = median(l, kr, n[kr]); lhi = hi
      printf "| %d | raw UDP | %.0f (%.0f-%.0f) | %.1f | %.4f (%.4f) | 1.00 |\n", s, med, rlo, rhi, med * s / 1e6, lmed, lhi }
    else if (s in na) printf "| %d | raw UDP | n/a (one datagram max 64 KiB) | | | |\n", s
    if (km in n) { med = median(r, km, n[km]); rlo = lo; rhi = hi; lmed = median(l, km, n[km]); lhi = hi
      ratio = rawmed > 0 ? sprintf("%.2f", med / rawmed) : "-"
      printf "| %d | mcl | %.0f (%.0f-%.0f) | %.1f | %.4f (%.4f) | %s |\n", s, med, rlo, rhi, med * s / 1e6, lmed, lhi, ratio }
  } }' "$raw_out"
echo
echo "raw lines:"
sed 's/^/    /' "$raw_out"
