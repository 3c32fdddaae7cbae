#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Remote logs: mcl-log --serve records in this network namespace and serves the recording on
# zmq+tcp; a second namespace (joined by a veth pair) lists it, reads it with mcl-dump -f (the
# same records as a local read, filtered by topic and by --start on the server), follows it
# live, and replays it with mcl-replay (every message arrives). A reader that stops reading
# does not slow the recording down. Then mcl-log --serve --root serves a directory of logs.
#   test_remote_log.sh BINDIR       (inside scripts/netns.sh, as ctest runs it)
set -uo pipefail
bin=${1:?usage: test_remote_log.sh BINDIR}
if [[ "${MCL_HAVE_ZMQ:-1}" != 1 ]]; then
    echo "test_remote_log.sh: mcl is built without ZeroMQ; skipped" >&2
    exit 77
fi
if [[ "${MCL_NETNS:-}" != 1 ]]; then
    echo "test_remote_log.sh: needs the private namespace of scripts/netns.sh; skipped" >&2
    exit 77
fi
tmp=$(mktemp -d)
holder=
cleanup() {
    kill -CONT $(jobs -p) 2>/dev/null
    kill $(jobs -p) 2>/dev/null
    wait 2>/dev/null
    ip link del mclr0 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
. "$(dirname "$0")/lib.sh" # check, wait_for, has, second_namespace

if ! second_namespace mclr 10.204.0; then
    echo "test_remote_log.sh: no veth support here; skipped" >&2
    exit 77
fi
in2() { nsenter -t "$holder" -n -- "$@"; }
# (In the background, nsenter itself, not the function: then $! is the tool, since nsenter -n
# execs it, and signals reach it.)
in2 ip link set lo multicast on
in2 ip route add 224.0.0.0/4 dev lo

# Waits (bounded) until the mcl-log with pid PID (stderr ERR) has recorded COUNT messages: its
# summary on SIGUSR1 says so.
wait_logged() { # wait_logged PID ERR COUNT
    for _ in $(seq 400); do
        kill -USR1 "$1" 2>/dev/null
        sleep 0.025
        grep -q " s: $3 messages," "$2" 2>/dev/null && return 0
    done
    echo "  mcl-log did not record $3 messages: $(tail -n 2 "$2")" >&2
    return 1
}
# Runs CMD until its output is VALUE, at most SECONDS (what is recorded reaches the file within
# the recorder's flush interval).
eventually() { # eventually SECONDS VALUE CMD...
    local secs=$1 want=$2 got=
    shift 2
    for _ in $(seq $((secs * 10))); do
        got=$("$@")
        [[ "$got" == "$want" ]] && return 0
        sleep 0.1
    done
    echo "  '$*' gave '$got', not '$want'" >&2
    return 1
}
lines() { "$@" | wc -l; }
status_is() { # status_is WANT CMD...: CMD exits WANT (else shows its stderr)
    local want=$1
    shift
    "$@" >"$tmp/st.out" 2>"$tmp/st.err"
    local rc=$?
    [[ $rc -eq $want ]] || { echo "  '$*' exited $rc, expected $want:" >&2; cat "$tmp/st.err" >&2; return 1; }
}
# JSON lines without what a replay changes (time, publisher, sequence).
strip() { sed -E 's/"time":"[^"]*",//; s/"publisher":"[^"]*","seq":[0-9]+,//'; }

u="udp://239.255.98.1:26298?iface=lo&ttl=0"

# --- record and serve -----------------------------------------------------------------------------
# (and a compressed recording of the same traffic, served with --root below)
mkdir -p "$tmp/root/day1"
"$bin/mcl-log" -v -u "$u" -o "$tmp/root/day1/recz.mcllog" --compress=lz4 2>"$tmp/logz.err" &
logz_pid=$!
check "compressed recorder listens" wait_for "$tmp/logz.err" "listening on" 10
"$bin/mcl-log" -v -u "$u" -o "$tmp/rec.mcllog" --serve "zmq+tcp://10.204.0.1:0" 2>"$tmp/log.err" &
log_pid=$!
check "log serves" wait_for "$tmp/log.err" "serving zmq+tcp://10.204.0.1:" 10
check "log listens" wait_for "$tmp/log.err" "listening on" 10
srv=$(sed -n 's|.*serving \(zmq+tcp://[^ ]*\)/rec\.mcllog$|\1|p' "$tmp/log.err")
check "served url known ($srv)" test -n "$srv"
loc="$srv/rec.mcllog"

"$bin/mcl-pub" -u "$u" -t imu -n 300 -s 32 -r 2000 -q
"$bin/mcl-pub" -u "$u" -t gps -n 100 -s 48 -r 2000 -q
check "recorded 400" wait_logged "$log_pid" "$tmp/log.err" 400

# --- list and read from the second namespace --------------------------------------------------
check "remote count 400" eventually 10 400 lines in2 "$bin/mcl-dump" -f "$loc" --json
in2 "$bin/mcl-dump" --list "$srv" --timeout 10 >"$tmp/list.out" 2>"$tmp/list.err"
check "list exit" test $? -eq 0
check "list names the recording" grep -q "^rec\.mcllog first_ns=[0-9]* last_ns=[0-9]* records=400 files=1 corrupt=0$" "$tmp/list.out"
check "list has one entry" test "$(wc -l <"$tmp/list.out")" -eq 1

# The same records as a local read, byte for byte (JSON: time, topic, publisher, seq, payload).
in2 "$bin/mcl-dump" -f "$loc" --json >"$tmp/remote.json"
check "remote dump exit" test $? -eq 0
"$bin/mcl-dump" -f "$tmp/rec.mcllog" --json >"$tmp/local.json"
check "remote = local" cmp -s "$tmp/remote.json" "$tmp/local.json"
# Filters, applied by the server: topic, and --start (seconds after the first record).
check "remote -t gps" test "$(lines in2 "$bin/mcl-dump" -f "$loc" -t gps --json)" -eq 100
check "remote -t 'i*'" test "$(lines in2 "$bin/mcl-dump" -f "$loc" -t 'i*' --json)" -eq 300
first=$(head -n 1 "$tmp/local.json")
in2 "$bin/mcl-dump" -f "$loc" --start 0.1 --json >"$tmp/remote-start.json"
"$bin/mcl-dump" -f "$tmp/rec.mcllog" --start 0.1 --json >"$tmp/local-start.json"
n=$(wc -l <"$tmp/remote-start.json")
check "remote --start cuts ($n of 400)" test "$n" -gt 0 -a "$n" -lt 400
check "remote --start = local --start" cmp -s "$tmp/remote-start.json" "$tmp/local-start.json"
check "remote --start leaves out the first" bash -c '! grep -qxF -- "$1" "$2"' _ "$first" "$tmp/remote-start.json"
check "remote -n 5" test "$(lines in2 "$bin/mcl-dump" -f "$loc" -n 5 --json)" -eq 5
# Refusals: no such log, a name escaping the server's root, remote and local logs merged.
check "remote missing log" status_is 2 in2 "$bin/mcl-dump" -f "$srv/nothing.mcllog"
check "remote escape refused" status_is 2 in2 "$bin/mcl-dump" -f "$srv/../etc/passwd"
check "remote and local not merged" status_is 2 "$bin/mcl-dump" -f "$loc" -f "$tmp/rec.mcllog"

# --- follow live: messages published after the reader started arrive ---------------------------
nsenter -t "$holder" -n -- "$bin/mcl-dump" -f "$loc" -F --json -n 450 --timeout 30 >"$tmp/follow.json" 2>"$tmp/follow.err" &
follow_pid=$!
check "follower caught up" eventually 10 400 lines cat "$tmp/follow.json"
"$bin/mcl-pub" -u "$u" -t late -n 50 -s 16 -r 1000 -q
wait "$follow_pid"
check "follower exit (got 450)" test $? -eq 0
check "follower saw the late ones" test "$(grep -c '"topic":"late"' "$tmp/follow.json")" -eq 50
check "recorded 450" wait_logged "$log_pid" "$tmp/log.err" 450

# --- a reader that stops reading does not slow the recording ------------------------------------
nsenter -t "$holder" -n -- "$bin/mcl-dump" -f "$loc" -F --json >"$tmp/stuck.json" 2>&1 &
stuck_pid=$!
check "stuck reader reading" wait_for "$tmp/stuck.json" '"topic":"late"' 10
kill -STOP "$stuck_pid"
"$bin/mcl-pub" -u "$u" -t burst -n 20000 -s 1k -r 0 -q
check "burst recorded" wait_logged "$log_pid" "$tmp/log.err" 20450
check "burst: nothing lost" bash -c "grep -A1 ' s: 20450 messages,' '$tmp/log.err' | grep -q 'lost 0, ring drops 0, kernel drops 0'"
kill -CONT "$stuck_pid"
kill "$stuck_pid" 2>/dev/null
wait "$stuck_pid" 2>/dev/null

# --- replay the remote log in the second namespace; a recorder there compares -------------------
u2="udp://239.255.98.2:26299?iface=lo&ttl=0"
nsenter -t "$holder" -n -- "$bin/mcl-log" -v -u "$u2" -o "$tmp/replayed.mcllog" 2>"$tmp/rlog.err" &
rlog_pid=$!
check "replay recorder listens" wait_for "$tmp/rlog.err" "listening on" 10
in2 "$bin/mcl-replay" -u "$u2" -s 20 -t imu,gps,late "$loc" 2>"$tmp/replay.err"
check "replay exit" test $? -eq 0
check "replay summary" has "$tmp/replay.err" "mcl-replay: 450 messages"
check "replayed recorded" wait_logged "$rlog_pid" "$tmp/rlog.err" 450
kill -INT "$rlog_pid"
wait "$rlog_pid"
"$bin/mcl-dump" -f "$tmp/replayed.mcllog" --json | strip >"$tmp/replayed.json"
"$bin/mcl-dump" -f "$tmp/rec.mcllog" -t imu,gps,late --json | strip >"$tmp/original.json"
check "replayed = recorded (450)" test "$(wc -l <"$tmp/replayed.json")" -eq 450
check "replayed content = recorded content" cmp -s "$tmp/replayed.json" "$tmp/original.json"
# --start/--end of a remote replay count from the log's first record, as for a local one.
want=$("$bin/mcl-dump" -f "$tmp/rec.mcllog" --start 0.05 --end 0.1 --json | wc -l)
in2 "$bin/mcl-replay" -u "$u2" -s 50 --start 0.05 --end 0.1 "$loc" 2>"$tmp/replay2.err"
check "replay --start/--end exit" test $? -eq 0
check "replay --start/--end: as local ($want)" has "$tmp/replay2.err" "mcl-replay: $want messages"
check "replay --start/--end cut" test "$want" -gt 0 -a "$want" -lt 400

kill -INT "$log_pid"
wait "$log_pid"
check "log exit" test $? -eq 0

check "compressed recorded 20450" wait_logged "$logz_pid" "$tmp/logz.err" 20450
check "compressed: nothing lost" bash -c "grep -A1 ' s: 20450 messages,' '$tmp/logz.err' | grep -q 'lost 0, ring drops 0, kernel drops 0'"
kill -INT "$logz_pid"
wait "$logz_pid"
check "compressed log exit" test $? -eq 0

# --- serve a directory only ---------------------------------------------------------------------
cp "$tmp/rec.mcllog" "$tmp/root/day1/"
"$bin/mcl-log" -v -u "$u" -o "$tmp/root/split" --split-count 4 2>"$tmp/split.err" &
split_pid=$!
check "split recorder listens" wait_for "$tmp/split.err" "listening on" 10
"$bin/mcl-pub" -u "$u" -t s -n 10 -s 8 -r 1000 -q
check "split recorded" wait_logged "$split_pid" "$tmp/split.err" 10
kill -INT "$split_pid"
wait "$split_pid"
"$bin/mcl-log" --serve "zmq+tcp://10.204.0.1:0" --root "$tmp/root" 2>"$tmp/root.err" &
root_pid=$!
check "root serves" wait_for "$tmp/root.err" "serving the logs under" 10
rsrv=$(sed -n 's|.* on \(zmq+tcp://[^ ]*\)$|\1|p' "$tmp/root.err")
check "root url known ($rsrv)" test -n "$rsrv"
in2 "$bin/mcl-dump" --list "$rsrv" >"$tmp/rlist.out"
check "root list: the copy" grep -q "^day1/rec\.mcllog .*records=20450 " "$tmp/rlist.out"
check "root list: a series once" test "$(grep -c '^split .*records=10 files=3 ' "$tmp/rlist.out")" -eq 1
check "root list: the compressed one" grep -q "^day1/recz\.mcllog .*records=20450 files=1 corrupt=0$" "$tmp/rlist.out"
check "root list: three entries" test "$(wc -l <"$tmp/rlist.out")" -eq 3
# A compressed log served: the same content as the plain recording of the same traffic, and
# --start (a time seek inside blocks) as when read locally.
in2 "$bin/mcl-dump" -f "$rsrv/day1/recz.mcllog" --json | strip >"$tmp/rz.json"
"$bin/mcl-dump" -f "$tmp/rec.mcllog" --json | strip >"$tmp/rp.json"
check "root compressed = plain (20450)" test "$(wc -l <"$tmp/rz.json")" -eq 20450
check "root compressed content = plain content" cmp -s "$tmp/rz.json" "$tmp/rp.json"
in2 "$bin/mcl-dump" -f "$rsrv/day1/recz.mcllog" --start 0.05 --json >"$tmp/rzs.json"
"$bin/mcl-dump" -f "$tmp/root/day1/recz.mcllog" --start 0.05 --json >"$tmp/lzs.json"
check "root compressed --start = local ($(wc -l <"$tmp/lzs.json"))" cmp -s "$tmp/rzs.json" "$tmp/lzs.json"
check "root compressed --start cuts" test "$(wc -l <"$tmp/lzs.json")" -lt 20450 -a -s "$tmp/lzs.json"
check "root read" test "$(lines in2 "$bin/mcl-dump" -f "$rsrv/day1/rec.mcllog" -t late --json)" -eq 50
check "root escape refused" status_is 2 in2 "$bin/mcl-dump" -f "$rsrv/../rec.mcllog"
check "root series read" test "$(lines in2 "$bin/mcl-dump" -f "$rsrv/split" --json)" -eq 10
kill -TERM "$root_pid"
wait "$root_pid"
check "root exit" test $? -eq 0
check "usage: --root without --serve" status_is 2 "$bin/mcl-log" --root "$tmp/root"
check "usage: bad --serve URL" status_is 2 "$bin/mcl-log" -u "$u" -o "$tmp/never.mcllog" --serve bogus://x
check "bad --serve: no recording left" test ! -e "$tmp/never.mcllog"
check "usage: --root not a directory" status_is 2 "$bin/mcl-log" --serve "zmq+tcp://127.0.0.1:0" --root "$tmp/rec.mcllog"
check "usage: --follow without -f" status_is 2 "$bin/mcl-dump" --follow
check "usage: --list with -f" status_is 2 "$bin/mcl-dump" --list "$rsrv" -f "$tmp/rec.mcllog"

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
