#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# mcl-log, mcl-replay and mcl-dump -f: recording at full speed, split rules, kill -9 and
# read-back, replay timing, Python MCL sample logs.
#   test_log.sh BINDIR DATADIR      (inside scripts/netns.sh, as ctest runs it)
set -uo pipefail
bin=${1:?usage: test_log.sh BINDIR DATADIR}
data=${2:?}
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
. "$(dirname "$0")/lib.sh" # check, wait_for, has
status_is() {
    local want=$1
    shift
    "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    [[ $rc -eq $want ]] || { echo "  '$*' exited $rc, expected $want:" >&2; cat "$tmp/err" >&2; return 1; }
}
err_says() { grep -q -- "$1" "$tmp/err" || { echo "  stderr lacks '$1':" >&2; cat "$tmp/err" >&2; return 1; }; }

# Starts mcl-log and waits (bounded) until it listens.
start_log() { # start_log NAME ARGS...
    local name=$1
    shift
    "$bin/mcl-log" -v "$@" 2>"$tmp/$name.err" &
    eval "${name}_pid=$!"
    for _ in $(seq 200); do
        grep -q "listening on" "$tmp/$name.err" 2>/dev/null && return 0
        sleep 0.025
    done
    echo "  mcl-log never started: $(cat "$tmp/$name.err")" >&2
    return 1
}
# Waits (bounded) until mcl-log NAME has recorded COUNT messages: its summary on SIGUSR1 says
# so. Stopping it before then would drop what is still on its way (socket, ring, writer).
wait_logged() { # wait_logged NAME COUNT
    local pid
    eval "pid=\$${1}_pid"
    for _ in $(seq 400); do
        kill -USR1 "$pid" 2>/dev/null
        sleep 0.025
        grep -q " s: $2 messages," "$tmp/$1.err" 2>/dev/null && return 0
    done
    echo "  mcl-log $1 did not record $2 messages: $(tail -n 2 "$tmp/$1.err")" >&2
    return 1
}
count_in() { "$bin/mcl-dump" -q -f "$1" --json | wc -l; } # -q prints nothing: use json
records() { "$bin/mcl-dump" -f "$@" --json 2>/dev/null | wc -l; }

check "log --help" status_is 0 "$bin/mcl-log" --help
check "log no output" status_is 2 "$bin/mcl-log"
check "log bad split" status_is 2 "$bin/mcl-log" -o "$tmp/x" --split-size abc
check "replay no log" status_is 2 "$bin/mcl-replay"
check "replay missing log" status_is 2 "$bin/mcl-replay" "$tmp/none"
check "replay bad speed" status_is 2 "$bin/mcl-replay" -s 0 "$tmp/none"
check "dump missing log" status_is 2 "$bin/mcl-dump" -f "$tmp/none"

# Full-speed recording of 64 B, 16 KiB and 1 MiB messages: nothing lost.
u="udp://239.255.96.1:26196?iface=lo&ttl=0"
start_log a -u "$u" -o "$tmp/full.mcllog"
"$bin/mcl-pub" -u "$u" -n 50000 -s 64 -r 0 -q
"$bin/mcl-pub" -u "$u" -n 2000 -s 16k -r 0 -q
"$bin/mcl-pub" -u "$u" -n 30 -s 1M -r 0 -q
wait_logged a 52030
kill -INT "$a_pid"
wait "$a_pid"
check "log exit" test $? -eq 0
cp "$tmp/a.err" "$tmp/err"
check "log summary" err_says "52030 messages"
check "log no loss" err_says "lost 0, ring drops 0, kernel drops 0"
check "log read back" test "$(records "$tmp/full.mcllog")" -eq 52030
check "log refuses overwrite" status_is 2 "$bin/mcl-log" -u "$u" -o "$tmp/full.mcllog" --duration 0.1
check "log refuses message" err_says "use --force"

# Compressed recordings (--compress, both codecs) of the same full-speed traffic: nothing lost,
# read back by mcl-dump -f, smaller than the plain log of the same records; bad values refused.
check "log bad --compress" status_is 2 "$bin/mcl-log" -u "$u" -o "$tmp/x" --compress=gzip
check "log bad --compress level" status_is 2 "$bin/mcl-log" -u "$u" -o "$tmp/x" --compress=zstd:99
check "log bad --compress lz4hc level" status_is 2 "$bin/mcl-log" -u "$u" -o "$tmp/x" --compress=lz4hc:13
check "log bad --block-size" status_is 2 "$bin/mcl-log" -u "$u" -o "$tmp/x" --compress --block-size 64M
check "log --block-size needs --compress" status_is 2 "$bin/mcl-log" -u "$u" -o "$tmp/x" --block-size 64K
for z in zstd lz4:1 lz4hc; do
    start_log z -u "$u" -o "$tmp/z.mcllog" --force --compress=$z
    "$bin/mcl-pub" -u "$u" -n 50000 -s 64 -r 0 -q
    "$bin/mcl-pub" -u "$u" -n 2000 -s 16k -r 0 -q
    wait_logged z 52000
    kill -INT "$z_pid"
    wait "$z_pid"
    check "log --compress=$z exit" test $? -eq 0
    cp "$tmp/z.err" "$tmp/err"
    check "log --compress=$z no loss" err_says "lost 0, ring drops 0, kernel drops 0"
    check "log --compress=$z read back" test "$(records "$tmp/z.mcllog")" -eq 52000
    check "log --compress=$z no damage" bash -c "! '$bin/mcl-dump' -f '$tmp/z.mcllog' -q 2>&1 | grep -q damaged"
    check "log --compress=$z version 2" test "$(od -An -tu1 -j9 -N1 "$tmp/z.mcllog" | tr -d ' ')" -eq 2
    zs=$(stat -c %s "$tmp/z.mcllog")
    # (the plain records: about 38.4 MB)
    check "log --compress=$z under half the plain size ($zs bytes)" test "$zs" -lt 19200000
done

# Into a directory: a new log named after the time.
mkdir "$tmp/dir"
start_log dd -u "$u" -o "$tmp/dir"
"$bin/mcl-pub" -u "$u" -n 10 -s 10 -r 0 -q
wait_logged dd 10
kill -INT "$dd_pid"
wait "$dd_pid"
check "log into a directory" test "$(records "$tmp/dir")" -eq 10

# Split by count: parts of 1000.
start_log s -u "$u" -o "$tmp/split" --split-count 1000
"$bin/mcl-pub" -u "$u" -n 3500 -s 100 -r 0 -q
wait_logged s 3500
kill -TERM "$s_pid"
wait "$s_pid"
check "split parts" test -f "$tmp/split_003.mcllog" -a ! -f "$tmp/split_004.mcllog"
check "split read back" test "$(records "$tmp/split")" -eq 3500

# kill -9 in the middle of a recording: what reached the file reads back, nothing crashes.
start_log k -u "$u" -o "$tmp/killed.mcllog" --flush-ms 20
"$bin/mcl-pub" -u "$u" -n 20000 -s 200 -r 20000 -q &
pub=$!
sleep 0.4 # (not synchronisation: the point of the test is to kill mid-stream)
recv_pid=$(pgrep -P "$k_pid" -x mcl-recv)
kill -9 "$k_pid"
wait "$k_pid" 2>/dev/null
wait "$pub"
n=$(records "$tmp/killed.mcllog")
check "killed read back" test "$n" -gt 1000 -a "$n" -le 20000
check "killed no damage" bash -c "! '$bin/mcl-dump' -f '$tmp/killed.mcllog' -q 2>&1 | grep -q damaged"
# The same with compression: every complete block reads back, the block being written is the
# tail (reported, not damage), and a reader follows what grew since.
start_log kz -u "$u" -o "$tmp/killedz.mcllog" --flush-ms 20 --compress
"$bin/mcl-pub" -u "$u" -n 20000 -s 200 -r 20000 -q &
pub=$!
sleep 0.4 # (not synchronisation: the point of the test is to kill mid-stream)
kill -9 "$kz_pid"
wait "$kz_pid" 2>/dev/null
wait "$pub"
n=$(records "$tmp/killedz.mcllog")
check "killed compressed read back ($n)" test "$n" -gt 1000 -a "$n" -le 20000
check "killed compressed no damage" bash -c "! '$bin/mcl-dump' -f '$tmp/killedz.mcllog' -q 2>&1 | grep -q damaged"
# Its receiver process ends too (a zombie until this sandbox's init reaps it is dead).
gone() {
    for _ in $(seq 100); do
        local st
        st=$(ps -o stat= -p "$1" 2>/dev/null)
        [[ -z "$st" || "$st" == Z* ]] && return 0
        sleep 0.05
    done
    return 1
}
check "receiver found" test -n "$recv_pid"
check "no receiver left" gone "$recv_pid"

# Replay of a 1 s recording at speed 1 and 2: every message, within 10 % of the time.
start_log r -u "$u" -o "$tmp/second.mcllog"
"$bin/mcl-pub" -u "$u" -t tick -n 101 -s 32 -r 100 -q
wait_logged r 101
kill -INT "$r_pid"
wait "$r_pid"
u2="udp://239.255.96.2:26197?iface=lo&ttl=0"
# (the same recording, compressed, replayed below too)
start_log rz -u "$u" -o "$tmp/secondz.mcllog" --compress
"$bin/mcl-pub" -u "$u" -t tick -n 101 -s 32 -r 1000 -q
wait_logged rz 101
kill -INT "$rz_pid"
wait "$rz_pid"
"$bin/mcl-dump" -u "$u2" -n 101 -q --stats --timeout 20 -v 2>"$tmp/dz.err" &
d=$!
for _ in $(seq 200); do grep -q "listening on" "$tmp/dz.err" && break; sleep 0.025; done
"$bin/mcl-replay" -u "$u2" -s 4 "$tmp/secondz.mcllog" 2>"$tmp/err"
check "replay compressed exit" test $? -eq 0
wait $d
check "replay compressed all received" test $? -eq 0
for speed in 1 2; do
    "$bin/mcl-dump" -u "$u2" -n 101 -q --stats --timeout 20 -v 2>"$tmp/d$speed.err" &
    d=$!
    for _ in $(seq 200); do grep -q "listening on" "$tmp/d$speed.err" && break; sleep 0.025; done
    "$bin/mcl-replay" -u "$u2" -s $speed "$tmp/second.mcllog" 2>"$tmp/err"
    check "replay x$speed exit" test $? -eq 0
    wait $d
    check "replay x$speed all received" test $? -eq 0
    secs=$(sed -n 's/.* in \([0-9.]*\) s;.*/\1/p' "$tmp/err")
    want=$(awk -v s=$speed 'BEGIN { print 1.0 / s }')
    check "replay x$speed timing ($secs s for $want)" awk -v a="$secs" -v w="$want" 'BEGIN { exit !(a >= w * 0.9 && a <= w * 1.1) }'
    sed 's/^/  /' "$tmp/err" >&2
done

# A clock stepped back 10 s in the middle of a recording (20 records 50 ms apart, then 20 more):
# mcl-replay says where, replays every record in the log's order, paced by the time between
# records (the step counts as none: 1.9 s in all), and --start/--end count on that timeline
# (before, the records after the step were sent in a burst, and --start 0.5 dropped them all).
python3 - "$tmp/step.mcllog" <<'PY'
import struct, sys
def crc32c(b):
    c = 0xffffffff
    for x in b:
        c ^= x
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    return c ^ 0xffffffff
meta = b"host=x\npart=0\n"
h = b"MCLLOG\r\n" + struct.pack(">HHIQ", 1, 24 + len(meta) + 4, 0, 1) + meta
out = [h + struct.pack(">I", crc32c(h))]
t0 = 1700000000 * 10**9
for i in range(40):
    body = struct.pack(">QQQHHI", t0 + i * 50000000 - (10 * 10**9 if i >= 20 else 0), 7, i, 4, 0, 2) + b"step" + b"%02d" % i
    out.append(b"MREC" + struct.pack(">II", len(body), crc32c(body)) + body)
open(sys.argv[1], "wb").write(b"".join(out))
PY
check "step log reads whole" test "$(records "$tmp/step.mcllog")" -eq 40
u3="udp://239.255.96.3:26198?iface=lo&ttl=0"
replay_step() { # replay_step WANT ARGS...: mcl-replay ARGS onto u3, a listener counts WANT
    local want=$1
    shift
    "$bin/mcl-dump" -u "$u3" -n "$want" -q --timeout 20 -v 2>"$tmp/sd.err" &
    local d=$!
    for _ in $(seq 200); do grep -q "listening on" "$tmp/sd.err" && break; sleep 0.025; done
    "$bin/mcl-replay" -u "$u3" "$@" "$tmp/step.mcllog" 2>"$tmp/err"
    local rc=$?
    wait $d
    local drc=$?
    [[ $rc -eq 0 && $drc -eq 0 ]] || { echo "  replay $* exited $rc, listener $drc:" >&2; cat "$tmp/err" >&2; return 1; }
}
check "step replay all" replay_step 40 -s 2
check "step replay warns" err_says "record 21 (.*) is 9.950 s before the one before it: the clock stepped back"
check "step replay summary" err_says "40 messages"
secs=$(sed -n 's/.* in \([0-9.]*\) s;.*/\1/p' "$tmp/err")
check "step replay paced ($secs s for 0.95)" awk -v a="$secs" 'BEGIN { exit !(a >= 0.85 && a <= 1.1) }'
check "step replay --start" replay_step 30 -s 4 --start 0.5
check "step replay --start summary" err_says "30 messages"
check "step replay --start --end" replay_step 22 -s 4 --start 0.5 --end 1.5
check "step replay --start --end summary" err_says "22 messages"
check "step replay past the end" status_is 1 "$bin/mcl-replay" -u "$u3" --start 5 "$tmp/step.mcllog"
check "step replay past the end says" err_says "nothing to replay"

# A crafted log of 256 MiB of record markers whose lengths run past the end of the file, then
# one genuine record (each marker once made the reader scan the rest of the file for a valid
# record: quadratic, and deaf to signals meanwhile): mcl-dump -f reads it in linear time, and
# SIGTERM and SIGINT stop it within a second even in the middle of it (the reader asks the
# tool's stop flag every MiB).
python3 - "$tmp/crafted.mcllog" <<'PY'
import struct, sys
def crc32c(b):
    c = 0xffffffff
    for x in b:
        c ^= x
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    return c ^ 0xffffffff
meta = b"host=x\npart=0\n"
h = b"MCLLOG\r\n" + struct.pack(">HHIQ", 1, 24 + len(meta) + 4, 0, 1) + meta
with open(sys.argv[1], "wb") as f:
    f.write(h + struct.pack(">I", crc32c(h)))
    f.write((b"MREC\x7f\xff\xff\xff" + bytes(40)) * (256 * 1024 * 1024 // 48))
    body = struct.pack(">QQQHHI", 1700000000 * 10**9, 1, 1, 4, 0, 2) + b"real" + b"ok"
    f.write(b"MREC" + struct.pack(">II", len(body), crc32c(body)) + body)  # one genuine record
PY
stops_promptly() { # stops_promptly SIG: mcl-dump -f on the crafted log ends within 1 s of SIG
    "$bin/mcl-dump" -f "$tmp/crafted.mcllog" -q 2>"$tmp/cd.err" &
    local pid=$! i
    # Until it has the log open (its signal handlers are in place by then: a background job of
    # a script starts with SIGINT ignored, so a SIGINT before them would be lost).
    for i in $(seq 400); do
        grep -q crafted.mcllog /proc/$pid/maps 2>/dev/null && break # (mapped; its fd is closed)
        sleep 0.005
    done
    # (it must still be reading when signalled: it takes seconds to go through the file)
    kill -"$1" "$pid" || { echo "  mcl-dump ended before SIG$1" >&2; return 1; }
    for i in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid"; return 0; }
        sleep 0.01
    done
    echo "  mcl-dump still running 1 s after SIG$1" >&2
    kill -9 "$pid"
    wait "$pid"
    return 1
}
check "crafted log: SIGTERM stops mcl-dump -f" stops_promptly TERM
check "crafted log: SIGINT stops mcl-dump -f" stops_promptly INT
check "crafted log: read through, its one record" bash -c "'$bin/mcl-dump' -f '$tmp/crafted.mcllog' --json | wc -l | grep -qx 1"
rm -f "$tmp/crafted.mcllog"

# A write error (a file size limit here: EFBIG, as a full disk gives ENOSPC): mcl-log stops,
# says why (strerror), and its summary counts only the messages that reached the file.
(ulimit -f 200 && exec "$bin/mcl-log" -v -u "$u" -o "$tmp/limited.mcllog") 2>"$tmp/lim.err" &
lim=$!
wait_for "$tmp/lim.err" "listening on" 5 >/dev/null
"$bin/mcl-pub" -u "$u" -n 2000 -s 1000 -r 2000 -q
for _ in $(seq 200); do kill -0 $lim 2>/dev/null || break; sleep 0.025; done
kill -TERM $lim 2>/dev/null
wait $lim
check "limited log exit 1" test $? -eq 1
cp "$tmp/lim.err" "$tmp/err"
check "limited log says why" err_says "limited.mcllog: write: File too large"
said=$(sed -n 's/^mcl-log: [0-9.]* s: \([0-9]*\) messages,.*/\1/p' "$tmp/lim.err")
inlog=$(records "$tmp/limited.mcllog")
check "limited log summary honest ($said said, $inlog in the file)" test -n "$said" -a "$said" = "$inlog" -a "$inlog" -gt 0

# Python MCL sample logs: values as in MCL's own CSV export (byte for byte).
check "mcl csv" bash -c "'$bin/mcl-dump' -f '$data/UnitTestMessageA.log' --csv name,data,timestamp | cmp -s - '$data/UnitTestMessageA.csv'"
check "mcl dir merge" test "$("$bin/mcl-dump" -f "$data" --csv name | tr -d '\r' | uniq -c | awk '{print $1 $2}' | tr '\n' ' ')" = "10UnitTestMessageA 10UnitTestMessageB "

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
