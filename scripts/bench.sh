#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Benchmarks, side by side in one run: raw UDP syscalls (the kernel's limit, one datagram per
# message), mcl (plain and batched), raw libzmq PUB/SUB over tcp (lossless XPUB_NODROP), mcl
# over zmq+tcp (the same socket options: XPUB binds, SUB connects, lossless, hwm=1000) and LCM
# (udpm), one-way throughput at 64 B .. 1 MiB; round trips for raw UDP, mcl and LCM. Everything
# runs in a private network namespace, sender pinned to core 1 and receiver to core 0, each
# case REPS times (default 3), the raw zmq and mcl zmq runs back to back. Prints Markdown tables
# (medians, min-max; "mcl zmq / raw zmq" from the back-to-back pairs) and writes CSV.
# Then the packet stream (bench/pstream.c): round trips against raw libzmq DEALER/ROUTER and
# REQ/REP, 64 requests in flight against raw DEALER/ROUTER and nng 1.5 req/rep, round trips on
# a socketpair against a raw write/read ping-pong, and 10,000,000 requests watching memory.
# Then RPC (bench/rpc.c): 64-byte-argument calls, one in flight, against raw libzmq REQ/REP and
# the packet stream alone, the error paths the service decides (UNIMPLEMENTED, INVALID_ARGUMENT)
# against the success path, and 1,000,000 calls with 5 % timeouts and 5 % cancels watching
# transaction ids and memory.
# Then streams (bench/stream.c): a byte stream read in 64 KiB pieces over zmq+tcp, with the
# default options and a few others, against a raw tcp write/read loop and raw libzmq DEALER ->
# ROUTER (64 KiB messages, HWM 64), and as a diagnostic both again with glibc's malloc told to
# keep what is freed (GLIBC_TUNABLES); an entity stream of 1 KiB elements (recv_elems, 256 at a
# time) against raw libzmq DEALER -> ROUTER and PUSH -> PULL; and a reader that pauses 10 s
# (STREAM_PAUSE_MS) on a 1 GB stream, watching its memory and buffered bytes against the
# window-plus-one-push bound, and the server's memory and CPU.
# Then the channel broker (bench/broker.c): 1 writer -> 4 readers of 64-byte messages, lossless,
# through mcl-broker (readers BLOCK, writer put_wait) against nats-server (core NATS, libnats),
# Mosquitto (QoS 0) and raw libzmq XPUB -> SUB (XPUB_NODROP); 3 readers with and without a paused
# RING reader; a 1/10 reader (delivered = floor(N/10) +- 1); brokered RPC round trips against NATS
# request-reply; and writer gating (unsubscribe -> inactive, no frames from an inactive writer).
# The brokers run pinned to core 0, the clients to core 1 (taskset); each case is its own process.
#
#   scripts/bench.sh             REPS=5 scripts/bench.sh        CSV=out.csv scripts/bench.sh
#   ONLY=targets scripts/bench.sh   (only issue 21's performance targets, met / not met;
#                                    BURST_RUNS runs of the 1 MiB burst, default 10;
#                                    QUEUED_RUNS of the queued 16 KiB case, default 10)
#   ONLY=pstream scripts/bench.sh   (only the packet-stream rows)
#   ONLY=rpc scripts/bench.sh       (only the RPC rows; RPC_SOAK=N calls in the soak)
#   ONLY=stream scripts/bench.sh    (only the stream rows; STREAM_PAUSE_MS=2000 and
#                                    STREAM_LOG_MB=200 for a quick run)
#   ONLY=heartbeat scripts/bench.sh (64 B throughput with heartbeats on and off, back to back)
#   ONLY=logread scripts/bench.sh   (log reading rate with each CRC32C, a 1 GB log; LOGREAD_MB)
#   ONLY=logz scripts/bench.sh      (compressed recordings: zstd/lz4 on camera and lidar-like
#                                    payloads; logs of mcl-sim's traffic plain, zstd and lz4:
#                                    disk, write and read rates; LOGZ_SECONDS, default 60)
#   ONLY=python scripts/bench.sh    (the Python package, bench/python/: a Python subscriber of
#                                    64 B against socket.recvfrom + msgpack.unpackb, a stalling
#                                    QueuedListener, a typed 1 GB log into numpy against the C
#                                    reader; PY_N messages, LOGREAD_MB)
#   ONLY=auth scripts/bench.sh      (authenticated and encrypted udp against plain, back to back:
#                                    64 B and 1 KiB throughput, round trip p50)
#   ONLY=wirez scripts/bench.sh     (compress= on the wire: a burst of 1 MiB camera-like frames
#                                    and of 64 KiB lidar-like scans with none, lz4, zstd:1, zstd;
#                                    WIREZ_N frames, default 200, and 16x as many scans)
#   ONLY=broker scripts/bench.sh    (only the broker rows; BROKER_N=N messages per fan-out run,
#                                    default 500000; installs nats-server, libnats-dev,
#                                    mosquitto and libmosquitto-dev when missing)
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${REPS:-3}
csv=${CSV:-build/bench.csv}
only=${ONLY:-}
case $only in "" | targets | pstream | rpc | stream | broker | heartbeat | auth | logread | logz | python | wirez) ;; *) echo "bench: ONLY must be targets, pstream, rpc, stream, broker, heartbeat, auth, logread, logz, python or wirez" >&2; exit 2 ;; esac

if [[ "${MCL_NETNS:-}" != 1 ]]; then
    scripts/setup.sh
    # Peers for comparison only (not needed to build or test mcl).
    peers=(liblcm-dev libnng-dev)
    [[ -z $only || $only == broker ]] && peers+=(nats-server libnats-dev mosquitto libmosquitto-dev)
    [[ -z $only || $only == python ]] && peers+=(python3-msgpack python3-numpy)
    for p in "${peers[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null; } ||
            echo "bench: $p not available; its rows are skipped" >&2
    done
    cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DMCL_BUILD_BENCH=ON -DMCL_BUILD_TESTS=OFF >/dev/null
    cmake --build build/release -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
    exec scripts/netns.sh "$0" "$@"
fi

b=build/release/bench
out=$(mktemp)
trap 'rm -f "$out"' EXIT
count() { case $1 in 64 | 1024) echo 200000 ;; 16384) echo 50000 ;; 262144) echo 4000 ;; *) echo 1000 ;; esac; }
run() { timeout 90 "$@" >>"$out" 2>/dev/null || echo "bench: failed: $*" >&2; }

# awk helpers of the pstream and rpc tables: key=value fields, medians, ratios of back-to-back
# pairs (rep i of one against rep i of the other: their median and range).
awk_pairs='
function kv(line, key,   m) { if (match(line, "(^| )" key "=[^ ]+")) { m = substr(line, RSTART, RLENGTH); sub(/^ /, "", m); return substr(m, length(key) + 2) } return "" }
function sortn(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t } }
function med(arr, k, n,   i, a) { for (i = 1; i <= n; i++) a[i] = arr[k, i]; sortn(a, n); return a[int((n + 1) / 2)] }
function pmed(arr, k1, k2, n1, n2,   i, q, m) { m = n1 < n2 ? n1 : n2; if (m == 0) return -1
  for (i = 1; i <= m; i++) q[i] = arr[k2, i] > 0 ? arr[k1, i] / arr[k2, i] : 0; sortn(q, m); return q[int((m + 1) / 2)] }
function pr(arr, k1, k2, n1, n2,   i, q, m) { m = n1 < n2 ? n1 : n2; if (m == 0) return "-"
  for (i = 1; i <= m; i++) q[i] = arr[k2, i] > 0 ? arr[k1, i] / arr[k2, i] : 0; sortn(q, m)
  return sprintf("%.2f (%.2f-%.2f)", q[int((m + 1) / 2)], q[1], q[m]) }
'

# Heartbeats cost nothing measurable: 64-byte throughput with heartbeat=100 (ten times the
# default rate, so any cost shows) and heartbeat=0, back to back, over udp and zmq+tcp.
if [[ $only == heartbeat ]]; then
hbo=$(mktemp)
for _ in $(seq "$reps"); do
    for hbv in 100 0; do
        timeout 90 $b/mcl-bench-throughput -u "udp://239.255.90.3:26093?iface=lo&ttl=0&heartbeat=$hbv" -s 64 -n 400000 2>/dev/null | sed "s/impl=[^ ]*/impl=udp-hb$hbv/" >>"$hbo"
        timeout 90 $b/mcl-bench-throughput -u "zmq+tcp://127.0.0.1:0?hwm=1000&heartbeat=$hbv" -s 64 -n 400000 2>/dev/null | sed "s/impl=[^ ]*/impl=zmq-hb$hbv/" >>"$hbo"
    done
done
echo
awk "$awk_pairs"'
/impl=/ { k = kv($0, "impl"); n[k]++; v[k, n[k]] = kv($0, "msgs_per_s") + 0 }
END { print "| 64 B, one sender, one listener | heartbeat=100 msg/s (median) | heartbeat=0 | on / off (pairs), target ≥ 0.98 |"; print "|---|---|---|---|"
  split("udp zmq", t, " ")
  for (i = 1; i <= 2; i++) { on = t[i] "-hb100"; off = t[i] "-hb0"; if (!(on in n) || !(off in n)) continue
    q = pmed(v, on, off, n[on], n[off])
    printf "| %s | %.0f | %.0f | %s: %s |\n", t[i], med(v, on, n[on]), med(v, off, n[off]), pr(v, on, off, n[on], n[off]), (q >= 0.98 ? "met" : "not met") } }' "$hbo"
rm -f "$hbo"
fi

# Authentication costs (docs/security.md): the same udp throughput and round trip with no key,
# with key= (Poly1305 MAC) and with key=&encrypt=1 (XChaCha20-Poly1305), back to back.
if [[ $only == auth ]]; then
ao=$(mktemp)
kd=$(mktemp -d)
build/release/cmd/mcl-keygen --group "$kd/bench" >/dev/null
K="&key=$kd/bench.gkey"
for _ in $(seq "$reps"); do
    for size in 64 1024; do
        for mode in plain mac enc; do
            case $mode in plain) o="" ;; mac) o="$K" ;; enc) o="$K&encrypt=1" ;; esac
            # (the listener needs only the key: it reads both kinds)
            timeout 90 $b/mcl-bench-throughput -u "udp://239.255.90.4:26094?iface=lo&ttl=0$o" -s $size -n 300000 2>/dev/null | sed "s/impl=[^ ]*/impl=$mode-$size/" >>"$ao"
        done
    done
    for mode in plain mac; do
        o=""; [[ $mode == mac ]] && o="$K"
        MCL_BENCH_OPTS="$o" timeout 90 $b/mcl-bench-peers rtt mcl 1024 20000 2>/dev/null | sed "s/impl=[^ ]*/impl=rtt-$mode/" >>"$ao"
    done
done
rm -rf "$kd"
echo
awk "$awk_pairs"'
/^rtt / { k = kv($0, "impl"); n[k]++; v[k, n[k]] = kv($0, "p50_us") + 0; next }
/impl=/ { k = kv($0, "impl"); n[k]++; v[k, n[k]] = kv($0, "msgs_per_s") + 0 }
END { print "| udp, one sender, one listener | msg/s or p50 µs (median) | no key | ratio (pairs) | target |"; print "|---|---|---|---|---|"
  split("mac-64 mac-1024 enc-1024 enc-64", t, " "); split("0.85 0.9 0.8 -", want, " ")
  for (i = 1; i <= 4; i++) { k = t[i]; split(k, kk, "-"); p = "plain-" kk[2]; if (!(k in n) || !(p in n)) continue
    q = pmed(v, k, p, n[k], n[p])
    printf "| %s B %s | %.0f | %.0f | %s | %s |\n", kk[2], (kk[1] == "mac" ? "key=" : "key=, encrypt=1"), med(v, k, n[k]), med(v, p, n[p]), pr(v, k, p, n[k], n[p]), (want[i] == "-" ? "-" : (q >= want[i] ? "≥ " want[i] " met" : "≥ " want[i] " not met")) }
  if (("rtt-mac" in n) && ("rtt-plain" in n)) { q = pmed(v, "rtt-mac", "rtt-plain", n["rtt-mac"], n["rtt-plain"])
    printf "| round trip 1 KiB p50 key= | %.1f µs | %.1f µs | %s | ≤ 1.05 %s |\n", med(v, "rtt-mac", n["rtt-mac"]), med(v, "rtt-plain", n["rtt-plain"]), pr(v, "rtt-mac", "rtt-plain", n["rtt-mac"], n["rtt-plain"]), (q <= 1.05 ? "met" : "not met") } }' "$ao"
rm -f "$ao"
fi

# The Python package (bench/python/*.py on build/release/python, Debian's python3 with numpy and
# msgpack): one sender (bench/pysend.c, core 1) at full rate, the Python receiver on core 0.
if [[ -z $only || $only == python ]] && [[ -d build/release/python/mcl ]]; then
po=$(mktemp)
pyn=${PY_N:-1000000}
pyurl='udp://239.255.92.1:26092?iface=lo&ttl=0'
for _ in $(seq "$reps"); do
    for m in pure mcl; do
        PYTHONPATH=build/release/python timeout 120 /usr/bin/python3 bench/python/pysub.py $m $b/mcl-bench-pysend "$pyurl" "$pyn" 64 >>"$po" 2>/dev/null || echo "bench: python $m failed" >&2
    done
    PYTHONPATH=build/release/python timeout 180 /usr/bin/python3 bench/python/pysub.py queued $b/mcl-bench-pysend "$pyurl" 100000 64 >>"$po" 2>/dev/null || echo "bench: python queued failed" >&2
done
pylog=/tmp/mcl-bench-pylog-$$.mcllog
timeout 600 $b/mcl-bench-logread -T -m "${LOGREAD_MB:-1024}" -o "$pylog" >>"$po" 2>/dev/null &&
    PYTHONPATH=build/release/python timeout 600 /usr/bin/python3 bench/python/pylog.py "$pylog" ax >>"$po" 2>/dev/null || echo "bench: python log failed" >&2
rm -f "$pylog"
echo
awk "$awk_pairs"'
/case=py-sub/ { i = kv($0, "impl"); n[i]++; r[i, n[i]] = kv($0, "received") + 0; ls[i, n[i]] = kv($0, "lost"); c[i] = kv($0, "count") }
/case=logread-typed/ { lr[kv($0, "impl")] = kv($0, "records_per_s") + 0; recs = kv($0, "records") }
END { print "| Python | received of sent (median) | lost counted | ratio | target |"; print "|---|---|---|---|---|"
  if (n["pure"] > 0) printf "| socket.recvfrom + msgpack.unpackb, 64 B | %d of %s | (cannot tell) | - | - |\n", med(r, "pure", n["pure"]), c["pure"]
  if (n["mcl"] > 0) { q = pmed(r, "mcl", "pure", n["mcl"], n["pure"]); printf "| mcl.RawListener callback, 64 B | %d of %s | %s | %.2f | ≥ 3 %s |\n", med(r, "mcl", n["mcl"]), c["mcl"], ls["mcl", 1], q, (q >= 3 ? "met" : "not met (the sender limits both: see received)") }
  if (n["queued"] > 0) printf "| QueuedListener, 20 ms stall per 1,000, 100,000 x 64 B | %d of %s | %s | - | 0 lost %s |\n", med(r, "queued", n["queued"]), c["queued"], ls["queued", 1], (ls["queued", 1] == 0 ? "met" : "not met")
  if (("c" in lr) && ("python" in lr)) printf "| typed log into numpy, %s records (one field) | %.0f rec/s (C reader %.0f) | - | %.2f | ≥ 0.5 %s |\n", recs, lr["python"], lr["c"], lr["python"] / lr["c"], (lr["python"] / lr["c"] >= 0.5 ? "met" : "not met") }' "$po"
rm -f "$po"
fi

# Log reading with each CRC32C (bench/logread.c): a 1 GB log (LOGREAD_MB) read through the log
# reader with the byte-at-a-time table (mcl 0.2), slicing-by-8 and SSE4.2, in one run.
if [[ $only == logread ]]; then
lo=$(mktemp)
timeout 600 $b/mcl-bench-logread -m "${LOGREAD_MB:-1024}" >"$lo" 2>/dev/null || echo "bench: logread failed" >&2
echo
awk "$awk_pairs"'
/case=logread/ { r[kv($0, "impl")] = kv($0, "mb_per_s") + 0; mb = kv($0, "mb") }
/case=crc32c/ { c[kv($0, "impl")] = kv($0, "mb_per_s") + 0 }
END { printf "| reading a %s MB log, CRC32C by | MB/s | vs byte at a time | bare CRC32C MB/s |\n|---|---|---|---|\n", mb
  split("bytewise slice8 sse42", t, " ")
  for (i = 1; i <= 3; i++) if (t[i] in r) printf "| %s | %.0f | %.2f%s | %.0f |\n", t[i], r[t[i]], r[t[i]] / r["bytewise"], (t[i] == "sse42" ? (r[t[i]] / r["bytewise"] >= 5 ? " (target ≥ 5: met)" : " (target ≥ 5: not met)") : ""), c[t[i]] }' "$lo"
rm -f "$lo"
fi

# compress= on the wire (bench/wirez.c): what each codec costs the publisher and saves on the
# wire, for a camera-like frame (8-bit, +-2 levels of noise on every pixel) and a lidar-like
# float32 scan (mm resolution, 2 cm noise). One run; the codecs side by side.
if [[ -z $only || $only == wirez ]]; then
wo=$(mktemp)
timeout 300 $b/mcl-bench-wirez all "${WIREZ_N:-200}" >"$wo" 2>/dev/null || echo "bench: wirez failed" >&2
echo
awk "$awk_pairs"'
/case=wirez/ { k = kv($0, "payload") "/" kv($0, "codec"); o[++n] = k; r[k] = kv($0, "msgs_per_s"); mb[k] = kv($0, "mb_per_s"); w[k] = kv($0, "wire_ratio"); c[k] = kv($0, "pub_cpu_us"); g[k] = kv($0, "received") "/" kv($0, "n"); sz[k] = kv($0, "size") }
END { print "| payload | codec | msg/s | MB/s published | wire / payload | CPU per msg, µs (publish + receive, one thread) | received |"; print "|---|---|---|---|---|---|---|"
  for (i = 1; i <= n; i++) { k = o[i]; split(k, kk, "/"); printf "| %s %s B | %s | %s | %s | %s | %s | %s |\n", kk[1], sz[k], kk[2], r[k], mb[k], w[k], c[k], g[k] } }' "$wo"
rm -f "$wo"
fi

# Compressed recordings (bench/logz.c, issue 22): the codecs on a camera-like u8 frame and a
# lidar-like float32 scan; logs of mcl-sim's default traffic (LOGZ_SECONDS simulated seconds)
# written plain, zstd and lz4, with mcl-sim's own payloads (mix sim) and sensor-like ones (mix
# noisy): disk against plain, write rate, read rate warm (page cache) and cold (pages dropped).
if [[ -z $only || $only == logz ]]; then
zo=$(mktemp)
timeout 600 $b/mcl-bench-logz -t "${LOGZ_SECONDS:-60}" >"$zo" 2>/dev/null || echo "bench: logz failed" >&2
echo
awk "$awk_pairs"'
/case=zcodec/ { z[++nz] = sprintf("| %s %s B | %s | %s | %s | %s |", kv($0, "data"), kv($0, "bytes"), kv($0, "impl"), kv($0, "ratio"), kv($0, "comp_mb_per_s"), kv($0, "decomp_mb_per_s")) }
/case=logz/ { k = kv($0, "mix") " " kv($0, "impl"); l[++nl] = k; d[k] = kv($0, "disk_ratio") + 0; w[k] = kv($0, "write_mb_per_s"); r[k] = kv($0, "read_mb_per_s") + 0; c[k] = kv($0, "cold_read_mb_per_s") + 0; mb = kv($0, "mb") }
END { print "| payload | codec | ratio | compress MB/s | decompress MB/s |\n|---|---|---|---|---|"
  for (i = 1; i <= nz; i++) print z[i]
  printf "\n| log of %s MB, mix and codec | disk vs plain | write MB/s | read MB/s (vs plain) | cold read MB/s (vs plain) | targets: disk ≤ 0.5, read ≥ 0.8 |\n|---|---|---|---|---|---|\n", mb
  for (i = 1; i <= nl; i++) { k = l[i]; split(k, mi, " "); p = mi[1] " plain"
    printf "| %s | %.3f | %s | %.0f (%.2f) | %.0f (%.2f) | %s |\n", k, d[k], w[k], r[k], r[k] / r[p], c[k], c[k] / c[p], (mi[2] == "plain" ? "-" : (d[k] <= 0.5 && r[k] / r[p] >= 0.8 ? "met" : "not met")) } }' "$zo"
rm -f "$zo"
fi

# --- performance targets (issue 21): each case measured here, pairs back to back ------------------
# zmq+tcp 64 B with coalescing (the default) and without it, 16 KiB, against raw libzmq XPUB/SUB;
# a burst of 1,000 x 1 MiB on multicast with the default 64 MiB socket buffer (BURST_RUNS runs,
# default 10, each reported) against raw libzmq's 1 MiB rate; the queued listener with 20 ms
# callback stalls every 1,000 messages and rcvbuf=4M at 16 KiB (a 256 MiB ring, and the default
# 64 MiB one for comparison) and 64 B; round trips 64 B and 1 KiB against raw UDP. Each target is
# printed with its ratio and met / not met.
if [[ -z $only || $only == targets ]]; then
to=$(mktemp)
tag() { timeout 120 "${@:2}" 2>/dev/null | sed "s|impl=[^ ]*|impl=$1|" >>"$to" || echo "bench: failed: ${*:2}" >&2; }
zu='zmq+tcp://127.0.0.1:0?hwm=1000'
qu='udp://239.255.91.1:26091?iface=lo&ttl=0&rcvbuf=4M'
for _ in $(seq "$reps"); do
    tag z64/mcl $b/mcl-bench-throughput -u "$zu" -s 64 -n 200000
    tag z64/raw $b/mcl-bench-peers zmq 64 200000
    tag z64/nocoal $b/mcl-bench-throughput -u "$zu&coalesce=0" -s 64 -n 200000
    # (raw libzmq sending 113-byte frames: mcl's frame for a 64 B message on the bench's
    # 5-character topic; what carrying mcl's framing costs libzmq itself)
    tag z64/raw113 $b/mcl-bench-peers zmq 113 200000
    tag z16k/mcl $b/mcl-bench-throughput -u "$zu" -s 16384 -n 50000
    tag z16k/raw $b/mcl-bench-peers zmq 16384 50000
    tag b/zmq $b/mcl-bench-peers zmq 1048576 1000
    # (the receiver on core 0, away from the sender's core 1: on two cores the scheduler
    # otherwise puts it behind the sender now and then, for milliseconds)
    qs="--stall-every 1000 --stall-ms 20 --receiver-cpus 0"
    tag q16kd $b/mcl-bench-queued --impl queued -s 16384 -n 10000 -u "$qu" $qs
    tag q16ku $b/mcl-bench-queued --impl queued -s 16384 -n 10000 -u "$qu" --stall-every 1000 --stall-ms 20 --ring 268435456
    tag q64 $b/mcl-bench-queued --impl queued -s 64 -n 100000 -u "$qu" $qs
    for s in 64 1024; do
        tag "r$s/raw" $b/mcl-bench-peers rtt raw $s 20000
        tag "r$s/mcl" $b/mcl-bench-peers rtt mcl $s 20000
    done
done
for _ in $(seq "${BURST_RUNS:-10}"); do tag b/mcl $b/mcl-bench-throughput -s 1048576 -n 1000; done
# The queued 16 KiB target, QUEUED_RUNS times (default 10), each beside a bare C receiver under
# the same socket, sender and cores (mcl-bench-peers drain): what any receiver loses here.
qs="--stall-every 1000 --stall-ms 20 --receiver-cpus 0"
for _ in $(seq "${QUEUED_RUNS:-10}"); do
    tag q16k $b/mcl-bench-queued --impl queued -s 16384 -n 10000 -u "$qu" $qs --ring 268435456
    tag q16k/raw $b/mcl-bench-peers drain 16384 10000
done
echo
awk "$awk_pairs"'
/impl=/ { k = kv($0, "impl"); n[k]++; v[k, n[k]] = (/^rtt / ? kv($0, "p50_us") : kv($0, "msgs_per_s")) + 0; l[k, n[k]] = kv($0, "loss_pct") + 0 }
function row(what, k, base, lim, higher,   q) { if (!(k in n) || !(base in n)) { printf "| %s | - | not measured |\n", what; return }
  q = pmed(v, k, base, n[k], n[base]); printf "| %s | %s | %s |\n", what, pr(v, k, base, n[k], n[base]), ((higher ? q >= lim : q <= lim) ? "met" : "not met") }
function inforow(what, k, base) { if (!(k in n) || !(base in n)) return
  printf "| %s | %s | for comparison |\n", what, pr(v, k, base, n[k], n[base]) }
function lossrow(what, k, info,   i, s, bad) { if (!(k in n)) { printf "| %s | - | not measured |\n", what; return }
  s = ""; bad = 0; for (i = 1; i <= n[k]; i++) { s = s (i > 1 ? ", " : "") sprintf("%.1f", l[k, i]); if (l[k, i] > 0) bad++ }
  printf "| %s | %d of %d runs lost nothing (loss %%: %s) | %s |\n", what, n[k] - bad, n[k], s, (info ? "for comparison" : bad == 0 ? "met" : "not met") }
END { print "| target (issue 21) | measured: ratio of back-to-back pairs, median (min-max) | |"; print "|---|---|---|"
  row("zmq+tcp 64 B, default (coalesce=1) ≥ 1.0× raw libzmq", "z64/mcl", "z64/raw", 1.0, 1)
  row("zmq+tcp 64 B, coalesce=0 ≥ 0.8× raw libzmq", "z64/nocoal", "z64/raw", 0.8, 1)
  inforow("(raw libzmq with 113-byte frames, the size of mcl'"'"'s frame for 64 B: vs raw libzmq 64 B)", "z64/raw113", "z64/raw")
  inforow("(mcl coalesce=0 vs raw libzmq with frames of the same size)", "z64/nocoal", "z64/raw113")
  row("zmq+tcp 16 KiB ≥ 1.0× raw libzmq", "z16k/mcl", "z16k/raw", 1.0, 1)
  lossrow("1,000 × 1 MiB burst on udp, default rcvbuf: nothing lost in every run", "b/mcl")
  if (("b/mcl" in n) && ("b/zmq" in n)) { q = med(v, "b/mcl", n["b/mcl"]) / med(v, "b/zmq", n["b/zmq"])
    printf "| 1 MiB burst ≥ 2× raw libzmq | %.2f (medians: %.0f / %.0f msg/s) | %s |\n", q, med(v, "b/mcl", n["b/mcl"]), med(v, "b/zmq", n["b/zmq"]), (q >= 2 ? "met" : "not met") }
  lossrow("queued listener, 10,000 × 16 KiB full rate, rcvbuf=4M, 20 ms stalls, 256 MiB ring, receiver_cpus=0: 0 lost", "q16k")
  lossrow("(a bare C receiver, one recv per datagram into a resident ring, same socket, sender and cores: mcl-bench-peers drain)", "q16k/raw", 1)
  lossrow("(the same with the default 64 MiB ring, which cannot hold the burst: see docs/performance.md)", "q16kd", 1)
  lossrow("(the same, 256 MiB ring, receiver not pinned)", "q16ku", 1)
  lossrow("queued listener, 100,000 × 64 B full rate, rcvbuf=4M, 20 ms stalls, receiver_cpus=0: 0 lost", "q64")
  row("round trip 64 B p50 ≤ 1.10× raw UDP", "r64/mcl", "r64/raw", 1.10, 0)
  row("round trip 1 KiB p50 ≤ 1.10× raw UDP", "r1024/mcl", "r1024/raw", 1.10, 0) }' "$to"
rm -f "$to"
fi

if [[ -z $only ]]; then
for size in 64 1024 16384 262144 1048576; do
    n=$(count $size)
    for _ in $(seq "$reps"); do
        run $b/mcl-bench-throughput --raw -s $size -n $n
        run $b/mcl-bench-throughput -s $size -n $n
        if [[ $size -le 1024 ]]; then
            run $b/mcl-bench-throughput -u "udp://239.255.90.1:26090?iface=lo&ttl=0&batch=100" -s $size -n $((n * 10))
            sed -i '$ s/impl=mcl /impl=mcl-batched /' "$out"
        fi
        run $b/mcl-bench-peers zmq $size $n
        run $b/mcl-bench-throughput -u "zmq+tcp://127.0.0.1:0?hwm=1000" -s $size -n $n
        if [[ $size -le 1024 ]]; then
            run $b/mcl-bench-throughput -u "zmq+tcp://127.0.0.1:0?hwm=1000&batch=100" -s $size -n $((n * 5))
            sed -i '$ s/impl=mcl-zmq-tcp /impl=mcl-zmq-tcp-batched /' "$out"
        fi
        run $b/mcl-bench-peers lcm $size $n
    done
done
for size in 64 1024; do
    for impl in raw mcl lcm; do
        for _ in $(seq "$reps"); do run $b/mcl-bench-peers rtt $impl $size 20000; done
    done
done

awk -v csv="$csv" '
function kv(line, key,   m) { if (match(line, "(^| )" key "=[^ ]+")) { m = substr(line, RSTART, RLENGTH); sub(/^ /, "", m); return substr(m, length(key) + 2) } return "" }
function sort3(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t } }
/^rtt / { if (kv($0, "n/a") != "") next; k = kv($0, "impl") SUBSEP kv($0, "size"); rn[k]++; r50[k, rn[k]] = kv($0, "p50_us") + 0; r99[k, rn[k]] = kv($0, "p99_us") + 0; r999[k, rn[k]] = kv($0, "p999_us") + 0; next }
/impl=/ { if (kv($0, "n/a") != "") next; impl = kv($0, "impl"); size = kv($0, "size"); k = impl SUBSEP size
          n[k]++; v[k, n[k]] = kv($0, "msgs_per_s") + 0; l[k, n[k]] = kv($0, "loss_pct") + 0 }
END {
  split("64 1024 16384 262144 1048576", sizes, " "); ni = split("raw-udp mcl mcl-batched zmq-tcp-xpub-nodrop mcl-zmq-tcp mcl-zmq-tcp-batched lcm-udpm", impls, " ")
  print "| size | implementation | msgs/s median (min-max) | MB/s | loss % median (max) | vs raw UDP | vs best peer |"
  print "|---|---|---|---|---|---|---|"
  print "size,impl,msgs_per_s_median,msgs_per_s_min,msgs_per_s_max,loss_pct_median,loss_pct_max" > csv
  for (si = 1; si <= 5; si++) { s = sizes[si]
    for (ii = 1; ii <= ni; ii++) { k = impls[ii] SUBSEP s; if (!(k in n)) continue
      m = n[k]; for (i = 1; i <= m; i++) { a[i] = v[k, i]; c[i] = l[k, i] } sort3(a, m); sort3(c, m)
      med[k] = a[int((m + 1) / 2)]; lo[k] = a[1]; hi[k] = a[m]; lmed[k] = c[int((m + 1) / 2)]; lmax[k] = c[m] }
    best = 0; split("zmq-tcp-xpub-nodrop lcm-udpm", peers, " ")
    for (pi = 1; pi <= 2; pi++) { k = peers[pi] SUBSEP s; if ((k in med) && lmed[k] < 1 && med[k] > best) best = med[k] }
    raw = (("raw-udp" SUBSEP s) in med) ? med["raw-udp" SUBSEP s] : 0
    for (ii = 1; ii <= ni; ii++) { k = impls[ii] SUBSEP s; if (!(k in med)) continue
      vr = raw > 0 ? sprintf("%.2f", med[k] / raw) : "-"; vb = best > 0 ? sprintf("%.2f", med[k] / best) : "-"
      printf "| %d | %s | %.0f (%.0f-%.0f) | %.1f | %.4f (%.4f) | %s | %s |\n", s, impls[ii], med[k], lo[k], hi[k], med[k] * s / 1e6, lmed[k], lmax[k], vr, vb
      printf "%d,%s,%.0f,%.0f,%.0f,%.4f,%.4f\n", s, impls[ii], med[k], lo[k], hi[k], lmed[k], lmax[k] >> csv } }
  # mcl over zmq+tcp against raw libzmq: the ratio of each back-to-back pair (rep i of both),
  # then the median and range of those ratios; the ratio of medians if a run failed.
  print ""; print "| size | mcl-zmq-tcp msgs/s | zmq-tcp-xpub-nodrop msgs/s | mcl zmq / raw zmq median (min-max) | batch=100 msgs/s | batched / raw zmq |"; print "|---|---|---|---|---|---|"
  for (si = 1; si <= 5; si++) { s = sizes[si]; km = "mcl-zmq-tcp" SUBSEP s; kz = "zmq-tcp-xpub-nodrop" SUBSEP s
    if (!(km in med) || !(kz in med) || med[kz] <= 0) continue
    if (n[km] == n[kz]) { m = n[km]; for (i = 1; i <= m; i++) q[i] = v[kz, i] > 0 ? v[km, i] / v[kz, i] : 0; sort3(q, m)
      rq = sprintf("%.2f (%.2f-%.2f)", q[int((m + 1) / 2)], q[1], q[m]) }
    else rq = sprintf("%.2f (medians)", med[km] / med[kz])
    kb = "mcl-zmq-tcp-batched" SUBSEP s
    rb = (kb in med) ? sprintf("%.0f | %.2f", med[kb], med[kb] / med[kz]) : "- | -"
    printf "| %d | %.0f | %.0f | %s | %s |\n", s, med[km], med[kz], rq, rb }
  print ""; print "| round trip | size | p50 µs | p99 µs | p99.9 µs | p50 vs raw UDP | p50 vs LCM |"; print "|---|---|---|---|---|---|---|"
  split("raw mcl lcm", ri, " ")
  for (si = 1; si <= 2; si++) { s = sizes[si]
    for (ii = 1; ii <= 3; ii++) { k = ri[ii] SUBSEP s; if (!(k in rn)) continue; m = rn[k]
      for (i = 1; i <= m; i++) { a[i] = r50[k, i]; c[i] = r99[k, i]; d[i] = r999[k, i] } sort3(a, m); sort3(c, m); sort3(d, m)
      p50[k] = a[int((m + 1) / 2)]; p99[k] = c[int((m + 1) / 2)]; p999[k] = d[int((m + 1) / 2)] }
    for (ii = 1; ii <= 3; ii++) { k = ri[ii] SUBSEP s; if (!(k in p50)) continue
      vr = (("raw" SUBSEP s) in p50) ? sprintf("%.2f", p50[k] / p50["raw" SUBSEP s]) : "-"
      vl = (("lcm" SUBSEP s) in p50) ? sprintf("%.2f", p50[k] / p50["lcm" SUBSEP s]) : "-"
      printf "| %s | %d | %.1f | %.1f | %.1f | %s | %s |\n", ri[ii], s, p50[k], p99[k], p999[k], vr, vl } }
}' "$out"
echo
echo "CSV: $csv"
fi

# --- packet stream: each case REPS times, the implementations of a row back to back ---------------
if [[ -z $only || $only == pstream ]]; then
# nng resolves even numeric hosts with AI_ADDRCONFIG, which finds no address in a namespace
# that has IPv4 on lo only: give it one (on the private veth, which leads nowhere).
ip addr add 10.205.0.1/24 dev mcl0 2>/dev/null || true
ps=$(mktemp)
trap 'rm -f "$out" "${ps:-}" "${rp:-}"' EXIT
prun() { timeout 120 $b/mcl-bench-pstream "$@" >>"$ps" 2>/dev/null || echo "bench: failed: pstream $*" >&2; }
for _ in $(seq "$reps"); do
    for impl in dealer reqrep mcl; do prun rtt $impl 64 20000; done
    for impl in dealer mcl nng; do prun win $impl 64 200000 64; done
    for impl in sp-raw sp-mcl; do prun rtt $impl 64 50000; done
done
prun soak "${SOAK:-10000000}"
echo
awk "$awk_pairs"'
/case=soak/ { soak = $0; next }
/case=rtt/ { if (kv($0, "n/a") != "") next; k = kv($0, "impl"); rn[k]++; p50[k, rn[k]] = kv($0, "p50_us") + 0; p99[k, rn[k]] = kv($0, "p99_us") + 0; next }
/case=win/ { if (kv($0, "n/a") != "") next; k = kv($0, "impl"); wn[k]++; rps[k, wn[k]] = kv($0, "rps") + 0; next }
END {
  print "| packet stream, 64 B | p50 µs | p99 µs | p50 / raw (pairs) | p99 / raw (pairs) |"; print "|---|---|---|---|---|"
  split("dealer reqrep mcl sp-raw sp-mcl", ri, " ")
  for (i = 1; i <= 5; i++) { k = ri[i]; if (!(k in rn)) continue
    base = (k == "sp-mcl") ? "sp-raw" : (k == "mcl" ? "dealer" : ""); r1 = "-"; r2 = "-"
    if (base != "" && (base in rn)) { r1 = pr(p50, k, base, rn[k], rn[base]); r2 = pr(p99, k, base, rn[k], rn[base]) }
    printf "| rtt %s | %.1f | %.1f | %s | %s |\n", k, med(p50, k, rn[k]), med(p99, k, rn[k]), r1, r2 }
  if (("mcl" in rn) && ("reqrep" in rn)) printf "| rtt mcl vs reqrep | | | %s | %s |\n", pr(p50, "mcl", "reqrep", rn["mcl"], rn["reqrep"]), pr(p99, "mcl", "reqrep", rn["mcl"], rn["reqrep"])
  print ""; print "| 64 in flight, 64 B | requests/s median | mcl / this (pairs) |"; print "|---|---|---|"
  split("dealer mcl nng", wi, " ")
  for (i = 1; i <= 3; i++) { k = wi[i]; if (!(k in wn)) continue
    printf "| %s | %.0f | %s |\n", k, med(rps, k, wn[k]), k == "mcl" ? "-" : pr(rps, "mcl", k, wn["mcl"], wn[k]) }
  if (soak != "") { print ""; print "soak: " soak }
}' "$ps"
fi

# --- RPC (bench/rpc.c): each case REPS times; in a rep the raw peer, the packet stream alone and
# the RPC cases back to back (ratios are of those pairs) --------------------------------------------
if [[ -z $only || $only == rpc ]]; then
rp=$(mktemp)
trap 'rm -f "$out" "${ps:-}" "$rp"' EXIT
rrun() { timeout "$1" "${@:2}" >>"$rp" 2>/dev/null || echo "bench: failed: ${*:2}" >&2; }
for _ in $(seq "$reps"); do
    rrun 120 $b/mcl-bench-rpc rtt reqrep 20000
    rrun 120 $b/mcl-bench-pstream rtt mcl 64 20000
    for impl in call call-thread ok unimpl invalid; do rrun 120 $b/mcl-bench-rpc rtt $impl 20000; done
done
rrun 330 $b/mcl-bench-rpc soak "${RPC_SOAK:-1000000}" 64 5 # (it fails itself past 300 s)
echo
awk "$awk_pairs"'
/^rpc case=soak/ { soak = $0; next }
/case=rtt/ { if (kv($0, "n/a") != "") next; k = $1 "/" kv($0, "impl"); rn[k]++; p50[k, rn[k]] = kv($0, "p50_us") + 0; p99[k, rn[k]] = kv($0, "p99_us") + 0; next }
function row(k, what, base, target, lim,   r1, r2, m) { if (!(k in rn)) return; r1 = "-"; r2 = "-"; m = ""
  if (base != "" && (base in rn)) { r1 = pr(p50, k, base, rn[k], rn[base]); r2 = pr(p99, k, base, rn[k], rn[base])
    if (lim > 0) m = pmed(p50, k, base, rn[k], rn[base]) <= lim ? " (met)" : " (not met)" }
  printf "| %s | %.1f | %.1f | %s | %s | %s%s |\n", what, med(p50, k, rn[k]), med(p99, k, rn[k]), r1, r2, target, m }
END {
  print "| RPC round trip, 64 B arguments, one in flight, tcp | p50 µs | p99 µs | p50 / base (pairs) | p99 / base (pairs) | base, target |"; print "|---|---|---|---|---|---|"
  row("rpc/reqrep", "raw libzmq REQ -> REP echo thread, 64 B", "", "-", 0)
  row("pstream/mcl", "packet stream alone (mcl_pstream_call, 64 B)", "rpc/reqrep", "REQ/REP", 0)
  row("rpc/call", "mcl_rpc_call, calling thread drives the stream", "rpc/reqrep", "REQ/REP, p50 <= 1.15", 1.15)
  row("rpc/call-thread", "mcl_rpc_call, mcl_rpc_client_open (stream thread)", "rpc/reqrep", "REQ/REP, p50 <= 1.15", 1.15)
  row("rpc/call", "mcl_rpc_call against the packet stream alone", "pstream/mcl", "packet stream", 0)
  row("rpc/ok", "mcl_rpc_submit, OK (caller dispatches)", "rpc/reqrep", "REQ/REP", 0)
  row("rpc/unimpl", "mcl_rpc_submit, UNIMPLEMENTED from the service", "rpc/ok", "OK path, p50 <= 1.1", 1.1)
  row("rpc/invalid", "mcl_rpc_submit, INVALID_ARGUMENT from the service", "rpc/ok", "OK path, p50 <= 1.1", 1.1)
  if (soak != "") { print ""; print "soak: " soak }
}' "$rp"
fi

# --- streams (bench/stream.c): each case REPS times; in a rep the raw peers and the mcl rows back
# to back (ratios are of those pairs) ----------------------------------------------------------------
if [[ -z $only || $only == stream ]]; then
sr=$(mktemp)
trap 'rm -f "$out" "${ps:-}" "${rp:-}" "$sr"' EXIT
srun() { timeout "$1" $b/mcl-bench-stream "${@:2}" >>"$sr" 2>/dev/null || echo "bench: failed: stream ${*:2}" >&2; }
# mcl options: WINDOW MAX_PUSH PUSHES (0 0 0: the library's defaults, 4M 256K 16).
stream_opts=("0 0 0" "4M 1M 16" "16M 256K 64")
for _ in $(seq "$reps"); do
    srun 60 bytes tcp 64K 2000 8
    srun 60 bytes dealer 64K 2000 8 0 0 0 64
    for o in "${stream_opts[@]}"; do srun 60 bytes mcl 64K 2000 8 $o; done
    srun 60 bytes mcl-mem 64K 1000 8
    for impl in dealer push mcl mcl-ops; do srun 60 elems $impl 1024 1000000 8 256; done
done
srun 120 paused 1000 "${STREAM_PAUSE_MS:-10000}"
echo
awk "$awk_pairs"'
function rng(arr, k, n,   i, a) { for (i = 1; i <= n; i++) a[i] = arr[k, i]; sortn(a, n); return sprintf("%.0f (%.0f-%.0f)", a[int((n + 1) / 2)], a[1], a[n]) }
function tgt(k, base, lim, n1, n2) { return pmed(v, k, base, n1, n2) >= lim ? "met" : "not met" }
function mib(x) { return x >= 1048576 && x % 1048576 == 0 ? (x / 1048576) " MiB" : (x / 1024) " KiB" }
/case=paused/ { paused = $0; next }
/case=bytes/ { if (kv($0, "n/a") != "") next; k = "b/" kv($0, "impl"); w = kv($0, "window")
  k = k "/" (w != "" ? w "/" kv($0, "max_push") "/" kv($0, "pushes") : "-/-/-") "/" kv($0, "malloc")
  if (!(k in n)) order[++no] = k; n[k]++; v[k, n[k]] = kv($0, "mbps") + 0; fl[k, n[k]] = kv($0, "minflt") / (kv($0, "bytes") / 1e6); next }
/case=elems/ { if (kv($0, "n/a") != "") next; k = "e/" kv($0, "impl"); if (!(k in n)) order[++no] = k; n[k]++; v[k, n[k]] = kv($0, "eps") + 0; next }
END {
  tcp = "b/tcp/-/-/-/default"
  print "| byte stream, 64 KiB reads, tcp on 127.0.0.1 | MB/s median (min-max) | / raw TCP (pairs) | / raw DEALER (pairs) | page faults per MB | targets: ≥ 0.8× TCP, ≥ 0.9× DEALER |"; print "|---|---|---|---|---|---|"
  for (i = 1; i <= no; i++) { k = order[i]; if (substr(k, 1, 2) != "b/") continue
    split(k, f, "/"); what = f[2]; tuned = f[6] == "tuned"; dl = "b/dealer/-/-/-/" f[6]
    if (what == "tcp") what = "raw tcp write/read loop, two threads"
    else if (what == "dealer") what = "raw libzmq DEALER -> ROUTER, HWM 64, zmq_msg_recv (no copy out)"
    else { src = what == "mcl" ? "synthesising source ops" : "memory source"
      what = (f[3] == 0 && f[4] == 0 && f[5] == 0) ? "mcl, " src ", defaults (4 MiB, 256 KiB, 16)" : sprintf("mcl, %s, window %s, max_push %s, %d pushes", src, mib(f[3]), mib(f[4]), f[5]) }
    if (tuned) what = what ", malloc tuned (diagnostic)"
    rt = (k != tcp && (tcp in n)) ? pr(v, k, tcp, n[k], n[tcp]) : "-"; rd = (k != dl && f[2] != "tcp" && (dl in n)) ? pr(v, k, dl, n[k], n[dl]) : "-"
    t = (f[2] ~ /^mcl/ && (tcp in n) && (dl in n)) ? tgt(k, tcp, 0.8, n[k], n[tcp]) ", " tgt(k, dl, 0.9, n[k], n[dl]) : ""
    printf "| %s | %s | %s | %s | %.0f | %s |\n", what, rng(v, k, n[k]), rt, rd, med(fl, k, n[k]), t }
  ed = "e/dealer"; ep = "e/push"
  print ""; print "| entity stream, 1 KiB elements, tcp on 127.0.0.1 | elements/s median (min-max) | / raw DEALER (pairs) | / raw PUSH (pairs) | target: ≥ 0.8× raw |"; print "|---|---|---|---|---|"
  for (i = 1; i <= no; i++) { k = order[i]; if (substr(k, 1, 2) != "e/") continue
    split(k, f, "/"); what = f[2]
    if (what == "dealer") what = "raw libzmq DEALER -> ROUTER, 1 KiB messages, HWM 4096"
    else if (what == "push") what = "raw libzmq PUSH -> PULL, 1 KiB messages, HWM 4096"
    else if (what == "mcl") what = "mcl, mcl_stream_source_iterator (one element per next()), recv_elems 256, defaults"
    else what = "mcl, entity source ops (a push filled per read), recv_elems 256, defaults"
    rd = (k != ed && (ed in n)) ? pr(v, k, ed, n[k], n[ed]) : "-"; rp = (k != ep && k != ed && (ep in n)) ? pr(v, k, ep, n[k], n[ep]) : "-"
    t = (f[2] ~ /^mcl/ && (ed in n) && (ep in n)) ? tgt(k, ed, 0.8, n[k], n[ed]) ", " tgt(k, ep, 0.8, n[k], n[ep]) : ""
    printf "| %s | %s | %s | %s | %s |\n", what, rng(v, k, n[k]), rd, rp, t }
  if (paused != "") { p = paused
    print ""; printf "| paused reader: 1 GB byte stream, one 64 KiB chunk read, then %.0f s asleep | value |\n", kv(p, "pause_ms") / 1000; print "|---|---|"
    printf "| buffered_bytes after the first chunk / max in the pause / bound (window + one push) | %.0f / %.0f / %.0f: %s |\n", kv(p, "buffered_bytes_first"), kv(p, "buffered_bytes_max"), kv(p, "bound_bytes"), kv(p, "within_bound") == 1 ? "within" : "beyond"
    printf "| units received after the first chunk / at the end of the pause | %.0f / %.0f |\n", kv(p, "received_first"), kv(p, "received_pause_end")
    printf "| reader VmRSS before open / after the first chunk / max in the pause / after it (KiB) | %d / %d / %d / %d: +%d KiB in the pause |\n", kv(p, "rss_before_open_kb"), kv(p, "rss_first_kb"), kv(p, "rss_pause_max_kb"), kv(p, "rss_pause_end_kb"), kv(p, "rss_pause_max_kb") - kv(p, "rss_first_kb")
    printf "| server VmRSS before the open / after the first chunk / max in the pause before the probe / after the probe (KiB) | %d / %d / %d / %d |\n", kv(p, "srv_rss_before_kb"), kv(p, "srv_rss_first_kb"), kv(p, "srv_rss_pause_max_kb"), kv(p, "srv_rss_after_probe_kb")
    printf "| server CPU in the first half of the pause | %.1f ms |\n", kv(p, "srv_cpu_pause_ms")
    printf "| another reader of the same server during the pause (256 MB) | %.0f MB/s |\n", kv(p, "probe_mbps")
    printf "| the paused reader after the pause (every byte checked) | %.0f MB/s, %.0f bytes, verified=%d |\n", kv(p, "resume_mbps"), kv(p, "resumed_bytes"), kv(p, "verified") }
}' "$sr"
# A recording read remotely against locally: mcl-dump -f -q (every record decoded, nothing
# printed) of a 1 GB log (1 KiB payloads), the file itself and mcl-log --serve's stream of it,
# back to back, REPS times.
lg=$(mktemp -d build/bench-log.XXXXXX)
trap 'rm -rf "$out" "${ps:-}" "${rp:-}" "$sr" "$lg"' EXIT
$b/mcl-bench-stream mklog "$lg/big.mcllog" "${STREAM_LOG_MB:-1000}" 1024 >/dev/null
c=build/release/cmd
$c/mcl-log --serve zmq+tcp://127.0.0.1:5790 --root "$lg" -q </dev/null >/dev/null 2>&1 &
lpid=$!
trap 'kill "$lpid" 2>/dev/null; rm -rf "$out" "${ps:-}" "${rp:-}" "$sr" "$lg"' EXIT
for _ in $(seq 100); do $c/mcl-dump --list zmq+tcp://127.0.0.1:5790 >/dev/null 2>&1 && break; sleep 0.1; done
secs() { local t0 t1; t0=$(date +%s.%N); timeout 120 "$@" >/dev/null 2>&1 || echo "bench: failed: $*" >&2; t1=$(date +%s.%N); awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'; }
mb=$(stat -c %s "$lg/big.mcllog")
echo
echo "| 1 GB recording, mcl-dump -f -q | MB/s median (min-max) | remote / local (pairs) | target ≥ 0.8× local |"
echo "|---|---|---|---|"
for _ in $(seq "$reps"); do
    echo "local $(secs $c/mcl-dump -f "$lg/big.mcllog" -q) remote $(secs $c/mcl-dump -f zmq+tcp://127.0.0.1:5790/big.mcllog -q)"
done | awk -v mb="$mb" '{ l[NR] = mb / $2 / 1e6; r[NR] = mb / $4 / 1e6; q[NR] = $2 / $4 }
function s(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t } }
END { n = NR; s(l, n); s(r, n); s(q, n); m = int((n + 1) / 2)
  printf "| local file | %.0f (%.0f-%.0f) | | |\n", l[m], l[1], l[n]
  printf "| remote (zmq+tcp, mcl-log --serve --root) | %.0f (%.0f-%.0f) | %.2f (%.2f-%.2f) | %s |\n", r[m], r[1], r[n], q[m], q[1], q[n], (q[m] >= 0.8 ? "met" : "not met") }'
kill "$lpid" 2>/dev/null; wait "$lpid" 2>/dev/null || true
fi

# --- the channel broker (bench/broker.c): each case its own process, REPS times; in a rep the
# four fan-out rows back to back (ratios are of those pairs). Brokers on core 0, clients on core 1.
if [[ -z $only || $only == broker ]]; then
br=$(mktemp)
bdir=$(mktemp -d)
bpids=()
trap 'for p in "${bpids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$out" "${ps:-}" "${rp:-}" "${sr:-}" "${lg:-}" "$br" "$bdir"' EXIT
c=build/release/cmd
bn=${BROKER_N:-500000}
on0=(); on1=()
command -v taskset >/dev/null && [[ $(nproc) -ge 2 ]] && { on0=(taskset -c 0); on1=(taskset -c 1); }
brun() { timeout "$1" "${@:2}" >>"$br" 2>/dev/null || echo "bench: failed: ${*:2}" >&2; }
# A server in the background (its PID kept, killed at the end), then wait until its port answers.
bstart() { "${on0[@]}" "$@" >/dev/null 2>&1 & bpids+=($!); }
bwait() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "bench: nothing listens on port $1" >&2; return 1; }
# The broker on tcp:// (its own sockets, read and written on its reactor thread) for every
# case, and on zmq+tcp:// (libzmq's I/O thread between) for the fan-out and the round trip.
murl=tcp://127.0.0.1:5811
zurl=zmq+tcp://127.0.0.1:5810
# heartbeat 60 s: the paused reader's client (its reactor thread asleep in the callback) stays.
bstart $c/mcl-broker -u $murl -q --heartbeat-ms 60000
bstart $c/mcl-broker -u $zurl -q --heartbeat-ms 60000
bwait 5811 && bwait 5810
nurl=-
if command -v nats-server >/dev/null; then
    bstart nats-server -a 127.0.0.1 -p 14222
    bwait 14222 && nurl=nats://127.0.0.1:14222
else echo "bench: nats-server not available; its rows are skipped" >&2; fi
qurl=-
mosq=$(command -v mosquitto || ls /usr/sbin/mosquitto 2>/dev/null || true)
if [[ -n $mosq ]]; then
    # max_queued_messages 0: no per-client queue limit, so QoS 0 is not cut there.
    printf 'listener 11883 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n' >"$bdir/mosquitto.conf"
    bstart "$mosq" -c "$bdir/mosquitto.conf"
    bwait 11883 && qurl=127.0.0.1:11883
else echo "bench: mosquitto not available; its rows are skipped" >&2; fi
for _ in $(seq "$reps"); do
    brun 30 "${on1[@]}" $b/mcl-bench-broker fanout mcl $murl "$bn" 10
    brun 30 "${on1[@]}" $b/mcl-bench-broker fanout mcl $zurl "$bn" 10
    [[ $nurl != - ]] && brun 30 "${on1[@]}" $b/mcl-bench-broker fanout nats $nurl "$bn" 10
    [[ $qurl != - ]] && brun 30 "${on1[@]}" $b/mcl-bench-broker fanout mosq $qurl "$bn" 10
    # XPUB is its own fan-out point: the program pins it to core 0, the SUB threads stay on 1.
    brun 30 "${on1[@]}" $b/mcl-bench-broker fanout xpub - "$bn" 10
    brun 30 "${on1[@]}" $b/mcl-bench-broker paused $murl "$bn" 10
done
brun 40 "${on1[@]}" $b/mcl-bench-broker decimate $murl 100000
brun 60 "${on1[@]}" $b/mcl-bench-broker rpc $murl $nurl 20000
brun 60 "${on1[@]}" $b/mcl-bench-broker rpc $zurl - 20000
brun 30 "${on1[@]}" $b/mcl-bench-broker gating $murl 20
for p in "${bpids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null || true; done
bpids=()
echo
awk "$awk_pairs"'
function rng(arr, k, n,   i, a) { for (i = 1; i <= n; i++) a[i] = arr[k, i]; sortn(a, n); return sprintf("%.0f (%.0f-%.0f)", a[int((n + 1) / 2)], a[1], a[n]) }
/case=fanout/ { if (kv($0, "n/a") != "") next; k = kv($0, "impl"); n[k]++; v[k, n[k]] = kv($0, "dps") + 0; lost[k] += kv($0, "lost"); d = kv($0, "client_dropped"); if (d != "") cd[k] += d; next }
/case=paused/ { k = "p/" kv($0, "impl"); n[k]++; v[k, n[k]] = kv($0, "dps") + 0; lost[k] += kv($0, "lost"); next }
/case=decimate/ { dec = $0; next }
/case=rtt/ { if (kv($0, "n/a") != "") next; k = "r/" kv($0, "impl"); rn[k]++; p50[k, rn[k]] = kv($0, "p50_us") + 0; p99[k, rn[k]] = kv($0, "p99_us") + 0; next }
/case=gating/ { gat = $0; next }
function tg(k, base, lim,   q) { if (!(k in n) || !(base in n)) return "-"; q = pmed(v, k, base, n[k], n[base]); return sprintf("%s ≥ %.1f: %s", pr(v, k, base, n[k], n[base]), lim, q >= lim ? "met" : "not met") }
END {
  print "| fan-out, 1 writer -> 4 readers, 64 B | deliveries/s median (min-max) | lost (all reps) | mcl / this (pairs), target |"; print "|---|---|---|---|"
  split("mcl mclz nats mosq xpub", fi, " "); split("mcl broker on tcp:// (mcl-broker, readers BLOCK, put_wait)|mcl broker on zmq+tcp:// (the same, through libzmq)|nats-server 2.9, core NATS (libnats)|Mosquitto 2.0, QoS 0 (libmosquitto)|raw libzmq XPUB (NODROP, HWM 1000) -> 4 SUB", fw, "|")
  split("0 0 1.0 1.5 0.5", lim, " ")
  for (i = 1; i <= 5; i++) { k = fi[i]; if (!(k in n)) continue
    extra = (k in cd) ? sprintf(", client-dropped %d", cd[k]) : ""
    col = k == "mcl" ? "-" : k == "mclz" ? pr(v, "mcl", k, n["mcl"], n[k]) " (tcp:// / zmq+tcp://)" : tg("mcl", k, lim[i])
    printf "| %s | %s | %d%s | %s |\n", fw[i], rng(v, k, n[k]), lost[k], extra, col }
  if (("p/without" in n) && ("p/with" in n)) {
    print ""; print "| 3 BLOCK readers, 64 B | deliveries/s of the 3, median (min-max) | lost | change with the paused reader (pairs), target ≤ 5 % |"; print "|---|---|---|---|"
    printf "| alone | %s | %d | - |\n", rng(v, "p/without", n["p/without"]), lost["p/without"]
    q = pmed(v, "p/with", "p/without", n["p/with"], n["p/without"])
    printf "| with a 4th reader (RING, buffer 100, window 16) paused in its callback | %s | %d | %s: %+.1f %%, %s |\n", rng(v, "p/with", n["p/with"]), lost["p/with"], pr(v, "p/with", "p/without", n["p/with"], n["p/without"]), (q - 1) * 100, (q - 1 <= 0.05 && 1 - q <= 0.05) ? "met" : "not met" }
  if (dec != "") { print ""; printf "fill rate 1/10 (every=10, BLOCK): offered %d, delivered %d, expected floor(N/10) = %d ± 1: %s\n", kv(dec, "offered"), kv(dec, "delivered"), kv(dec, "expected"), kv(dec, "ok") == 1 ? "exact (ok)" : "NOT ok" }
  if ("r/mcl" in rn) { print ""; print "| round trip, 64 B, one in flight, 20k calls | p50 µs | p99 µs | mcl / NATS p50, target ≤ 1.0 |"; print "|---|---|---|---|"
    q = ("r/nats" in rn) ? p50["r/mcl", 1] / p50["r/nats", 1] : -1
    printf "| mcl: mcl_rpc_call -> broker on tcp:// -> responder client (mcl_broker_serve_rpc) | %.1f | %.1f | %s |\n", p50["r/mcl", 1], p99["r/mcl", 1], q < 0 ? "-" : sprintf("%.2f: %s", q, q <= 1.0 ? "met" : "not met")
    if ("r/mclz" in rn) printf "| mcl: the same through the broker on zmq+tcp:// | %.1f | %.1f | %s |\n", p50["r/mclz", 1], p99["r/mclz", 1], ("r/nats" in rn) ? sprintf("%.2f", p50["r/mclz", 1] / p50["r/nats", 1]) : "-"
    if ("r/nats" in rn) printf "| NATS: natsConnection_Request -> nats-server -> subscriber (SendAsap) | %.1f | %.1f | - |\n", p50["r/nats", 1], p99["r/nats", 1] }
  if (gat != "") { g = gat; print ""; print "| writer gating, " kv(g, "rounds") " rounds | value |"; print "|---|---|"
    printf "| unsubscribe call -> mcl_broker_writer_active() false, p50 / max | %s / %s µs (inactive before unsubscribe returned: %d of %d) |\n", kv(g, "inactive_p50_us"), kv(g, "inactive_max_us"), kv(g, "inactive_by_unsubscribe_return"), kv(g, "rounds")
    printf "| puts while inactive: MCL_EAGAIN / refused_inactive / other results | %d / %d / %d |\n", kv(g, "puts") - kv(g, "not_eagain"), kv(g, "refused_inactive"), kv(g, "not_eagain")
    printf "| frames the broker took from the inactive writer (broker.stats offered) | %d: %s |\n", kv(g, "broker_offered_while_inactive"), kv(g, "ok") == 1 ? "ok" : "NOT ok" }
}' "$br"
fi
