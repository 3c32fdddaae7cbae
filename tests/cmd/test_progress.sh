#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Status and progress lines of mcl-log, mcl-replay, mcl-pub and mcl-sim. With stderr a pipe or a
# file: no progress text and no '\r' at all. On a terminal (a pseudo-terminal from util-linux
# `script`): one line rewritten in place, with sane numbers, ended by a newline before the
# summary; cut to the terminal's width; no escape sequences with TERM=dumb; none with -q.
# mcl-replay --start past the end (or -t matching nothing) says so with the log's time span,
# exits 1 and sends nothing; --start inside the span still works; local and remote logs.
#   test_progress.sh BINDIR      (inside scripts/netns.sh, as ctest runs it)
set -uo pipefail
bin=${1:?usage: test_progress.sh BINDIR}
if ! command -v script >/dev/null; then
    echo "test_progress.sh: no 'script' (util-linux; scripts/setup.sh installs bsdutils); skipped" >&2
    exit 77
fi
tmp=$(mktemp -d)
cleanup() {
    kill $(jobs -p) 2>/dev/null
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
. "$(dirname "$0")/lib.sh" # check, wait_for, has

# on_tty OUT CMD...: runs CMD on a pseudo-terminal (bounded: 60 s); what the terminal showed
# goes to OUT; the exit status is CMD's. TERM is xterm unless set for the call.
on_tty() {
    local out=$1
    shift
    TERM=${TERM_FOR_TTY:-xterm} timeout 60 script -qfec "exec $(printf '%q ' "$@")" /dev/null \
        </dev/null >"$out"
}
# The rewrites of a terminal capture, one a line (escape sequences removed).
rows() { tr '\r' '\n' <"$1" | sed 's/\x1b\[K//g' | grep -v '^$'; }
no_cr() { # no_cr FILE: no '\r' and no escape in FILE (else shows it)
    ! grep -q $'[\r\033]' "$1" || { echo "  '\\r' or ESC in $1:" >&2; cat -A "$1" | head -5 >&2; return 1; }
}
lacks() { ! grep -q -- "$2" "$1" || { echo "  '$2' in $1:" >&2; cat -A "$1" | head -5 >&2; return 1; }; }
rows_match() { # rows_match FILE REGEX: some rewrite of the capture FILE matches REGEX
    rows "$1" | grep -Eq -- "$2" || { echo "  no row matches '$2' in $1:" >&2; rows "$1" | head -20 >&2; return 1; }
}
# Waits (bounded) until mcl-log with pid PID (stderr ERR) has recorded COUNT messages: its
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
# The pid of the process named NAME among the descendants of PID (a background on_tty: its
# subshell, timeout, script, then the tool).
tool_of() { # tool_of PID NAME
    local p kids
    for _ in $(seq 200); do
        kids=$1
        while [[ -n "$kids" ]]; do
            for p in $kids; do
                [[ "$(cat /proc/$p/comm 2>/dev/null)" == "$2" ]] && { echo "$p"; return 0; }
            done
            kids=$(for p in $kids; do pgrep -P "$p"; done)
        done
        sleep 0.025
    done
    return 1
}

u="udp://239.255.97.1:26301?iface=lo&ttl=0"
u2="udp://239.255.97.2:26302?iface=lo&ttl=0"

# --- mcl-log -------------------------------------------------------------------------------------
# (a) stderr a file: the summary, no status line. (Two periods long: a status would show.)
"$bin/mcl-log" -v -u "$u" -o "$tmp/pipe.mcllog" --duration 2.2 2>"$tmp/log-pipe.err" &
lp=$!
check "log pipe listens" wait_for "$tmp/log-pipe.err" "listening on" 10
"$bin/mcl-pub" -u "$u" -n 200 -r 1000 -s 50 -q
wait "$lp"
check "log pipe exit" test $? -eq 0
check "log pipe summary" has "$tmp/log-pipe.err" "s: 200 messages"
check "log pipe no status" lacks "$tmp/log-pipe.err" "msgs,"
check "log pipe no \\r" no_cr "$tmp/log-pipe.err"

# (b) on a terminal: a bounded 2000-message stream at 1000/s into parts of 700 messages.
on_tty "$tmp/log.tty" "$bin/mcl-log" -u "$u" -o "$tmp/parts" --split-count 700 &
lt=$!
# The first line comes at once, once it listens.
check "log tty status at start" wait_for "$tmp/log.tty" "mcl-log: parts_000.mcllog: " 10
"$bin/mcl-pub" -u "$u" -n 2000 -r 1000 -s 100 -q
check "log tty counts all" wait_for "$tmp/log.tty" "2000 msgs" 10
log_pid=$(tool_of "$lt" mcl-log)
kill -INT "$log_pid"
wait "$lt"
check "log tty exit" test $? -eq 0
check "log tty rewrites in place" grep -q $'\r'mcl-log: "$tmp/log.tty"
check "log tty clears to the end" grep -q $'\033\[K' "$tmp/log.tty"
check "log tty count > 0 mid-stream" rows_match "$tmp/log.tty" \
    "^mcl-log: parts_00[0-2]\.mcllog: [0-9.]+ s, ([1-9][0-9]{0,2}|1[0-9]{3}) msgs, "
check "log tty current part" rows_match "$tmp/log.tty" "^mcl-log: parts_002\.mcllog: .* 2000 msgs, 0\.[0-9] MB, "
check "log tty rate ~1000 msg/s" bash -c "tr '\r' '\n' <'$tmp/log.tty' | sed -n 's/.* msgs, [0-9.]* MB, \([0-9]*\) msg\/s.*/\1/p' |
    awk '\$1 >= 500 && \$1 <= 1500 { ok = 1 } END { exit !ok }'"
check "log tty losses" rows_match "$tmp/log.tty" "lost 0, kernel drops 0, ring drops 0, malformed 0"
# The summary on a line of its own after the status line.
check "log tty summary own line" bash -c "tr -d '\r' <'$tmp/log.tty' | grep -q '^mcl-log: [0-9.]* s: 2000 messages, '"
check "log tty parts written" test -f "$tmp/parts_002.mcllog" -a ! -f "$tmp/parts_003.mcllog"
# -q: no status line either.
check "log tty -q exit" on_tty "$tmp/logq.tty" "$bin/mcl-log" -q -u "$u" -o "$tmp/quiet.mcllog" --duration 1.5
check "log tty -q silent" lacks "$tmp/logq.tty" "msgs,"

# --- mcl-pub -------------------------------------------------------------------------------------
"$bin/mcl-pub" -u "$u" -n 1500 -r 1000 -s 20 2>"$tmp/pub-pipe.err"
check "pub pipe exit" test $? -eq 0
check "pub pipe summary" has "$tmp/pub-pipe.err" "published 1500 messages"
check "pub pipe no progress" lacks "$tmp/pub-pipe.err" "msgs ("
check "pub pipe no \\r" no_cr "$tmp/pub-pipe.err"
check "pub tty exit" on_tty "$tmp/pub.tty" "$bin/mcl-pub" -u "$u" -n 2500 -r 1000 -s 20
check "pub tty progress" rows_match "$tmp/pub.tty" "^mcl-pub: (9[0-9]{2}|1[0-9]{3})/2500 msgs \([0-9.]+ %\), [0-9]+ msg/s, elapsed 1\.[0-9] s, left [0-9.]+ s$"
check "pub tty done" rows_match "$tmp/pub.tty" "^mcl-pub: 2500/2500 msgs \(100\.0 %\)"
check "pub tty summary own line" bash -c "tr -d '\r' <'$tmp/pub.tty' | grep -q '^mcl-pub: published 2500 messages'"
# A short job shows nothing.
check "pub tty short" on_tty "$tmp/pubs.tty" "$bin/mcl-pub" -u "$u" -n 10 -r 100 -s 20
check "pub tty short silent" lacks "$tmp/pubs.tty" "msgs ("

# --- mcl-sim -------------------------------------------------------------------------------------
"$bin/mcl-sim" -u "$u" -d 1.5 2>"$tmp/sim-pipe.err"
check "sim pipe exit" test $? -eq 0
check "sim pipe no progress" lacks "$tmp/sim-pipe.err" "msgs,"
check "sim pipe no \\r" no_cr "$tmp/sim-pipe.err"
check "sim tty exit" on_tty "$tmp/sim.tty" "$bin/mcl-sim" -u "$u" -d 2.5
check "sim tty progress" rows_match "$tmp/sim.tty" "^mcl-sim: 1\.[0-9] s of 2\.5 s \([0-9.]+ %\), left 1\.[0-9] s, [1-9][0-9]* msgs, [0-9.]+ MB, [1-9][0-9]* msg/s$"
check "sim tty end" rows_match "$tmp/sim.tty" "^mcl-sim: 2\.5 s of 2\.5 s "
check "sim tty summary own line" bash -c "tr -d '\r' <'$tmp/sim.tty' | grep -q '^mcl-sim: [0-9.]* s on '"

# --- mcl-replay ----------------------------------------------------------------------------------
# A 1 s recording: 101 messages at 100 Hz.
"$bin/mcl-log" -v -u "$u" -o "$tmp/second.mcllog" 2>"$tmp/rec.err" &
rp=$!
check "rec listens" wait_for "$tmp/rec.err" "listening on" 10
"$bin/mcl-pub" -u "$u" -t tick -n 101 -s 32 -r 100 -q
check "rec recorded" wait_logged "$rp" "$tmp/rec.err" 101
kill -INT "$rp"
wait "$rp"

# (a) stderr a file.
"$bin/mcl-replay" -u "$u2" -s 0.4 "$tmp/second.mcllog" 2>"$tmp/rep-pipe.err"
check "replay pipe exit" test $? -eq 0
check "replay pipe summary" has "$tmp/rep-pipe.err" "101 messages"
check "replay pipe no progress" lacks "$tmp/rep-pipe.err" "msgs ("
check "replay pipe no \\r" no_cr "$tmp/rep-pipe.err"
# (b) on a terminal (2.5 s at speed 0.4): done/total, percentage, position, elapsed, left;
# 100 % at the end, then the summary on its own line.
check "replay tty exit" on_tty "$tmp/rep.tty" "$bin/mcl-replay" -u "$u2" -s 0.4 "$tmp/second.mcllog"
check "replay tty progress" rows_match "$tmp/rep.tty" \
    "^mcl-replay: [1-9][0-9]?/101 msgs \([0-9]{1,2}\.[0-9] %\), at 0\.[0-9] s of 1\.0 s, elapsed [12]\.[0-9] s, left [0-9.]+ s$"
check "replay tty 100 %" rows_match "$tmp/rep.tty" "^mcl-replay: 101/101 msgs \(100\.0 %\), at 1\.0 s of 1\.0 s, elapsed 2\.[0-9] s, left 0\.0 s$"
check "replay tty summary own line" bash -c "tr -d '\r' <'$tmp/rep.tty' | grep -q '^mcl-replay: 101 messages'"
# TERM=dumb: still rewritten in place, but with spaces, no escape sequences.
TERM_FOR_TTY=dumb on_tty "$tmp/rep-dumb.tty" "$bin/mcl-replay" -u "$u2" -s 0.5 "$tmp/second.mcllog"
check "replay dumb progress" rows_match "$tmp/rep-dumb.tty" "^mcl-replay: 101/101 msgs \(100\.0 %\)"
check "replay dumb no escapes" lacks "$tmp/rep-dumb.tty" $'\033'
# A narrow terminal: each rewrite fits on one row.
check "replay narrow exit" timeout 60 env TERM=xterm script -qfec \
    "stty cols 40 && exec $bin/mcl-replay -u '$u2' -s 0.5 '$tmp/second.mcllog'" /dev/null </dev/null \
    >"$tmp/rep-narrow.tty"
check "replay narrow shown" rows_match "$tmp/rep-narrow.tty" "^mcl-replay: 101/101 msgs"
check "replay narrow cut" bash -c "tr '\r' '\n' <'$tmp/rep-narrow.tty' | sed 's/\x1b\[K//g' | grep '/101 msgs' |
    awk 'length(\$0) > 39 { bad = 1 } END { exit bad }'"
check "replay -q tty" on_tty "$tmp/rep-q.tty" "$bin/mcl-replay" -q -u "$u2" -s 0.5 "$tmp/second.mcllog"
check "replay -q tty silent" lacks "$tmp/rep-q.tty" "msgs"

# (c) --start past the end: a warning with the log's span, exit 1, nothing sent (a listener
# that hears nothing for 3 s).
"$bin/mcl-dump" -v -u "$u2" --json --timeout 3 >"$tmp/none.out" 2>"$tmp/none.err" &
dp=$!
check "listener up" wait_for "$tmp/none.err" "listening on" 10
"$bin/mcl-replay" -u "$u2" --start 60 "$tmp/second.mcllog" 2>"$tmp/rep-past.err"
check "replay past end exit 1" test $? -eq 1
check "replay past end warning" has "$tmp/rep-past.err" \
    "mcl-replay: --start 60 is past the end of $tmp/second.mcllog: its records span 0.0 to 1.0 s (seconds after its first record, "
check "replay past end nothing to replay" has "$tmp/rep-past.err" "): nothing to replay"
"$bin/mcl-replay" -u "$u2" -t nope "$tmp/second.mcllog" 2>"$tmp/rep-topic.err"
check "replay no topic exit 1" test $? -eq 1
check "replay no topic warning" has "$tmp/rep-topic.err" "-t nope matches no record of $tmp/second.mcllog: its records span 0.0 to 1.0 s"
"$bin/mcl-replay" -u "$u2" -t 'ti*' --start 2 --end 3 "$tmp/second.mcllog" 2>"$tmp/rep-range.err"
check "replay range exit 1" test $? -eq 1
check "replay range warning" has "$tmp/rep-range.err" "--start 2 is past the end of $tmp/second.mcllog: its records on ti\* span 0.0 to 1.0 s"
wait "$dp"
check "nothing received" test ! -s "$tmp/none.out"
# --start inside the span: the second half (about 51 messages), all received.
"$bin/mcl-dump" -v -u "$u2" --json --timeout 10 >"$tmp/half.out" 2>"$tmp/half.err" &
dp=$!
check "listener 2 up" wait_for "$tmp/half.err" "listening on" 10
"$bin/mcl-replay" -u "$u2" --start 0.5 "$tmp/second.mcllog" 2>"$tmp/rep-half.err"
check "replay inside exit 0" test $? -eq 0
n=$(sed -n 's/^mcl-replay: \([0-9]*\) messages.*/\1/p' "$tmp/rep-half.err")
check "replay inside count ($n)" test "${n:-0}" -ge 45 -a "${n:-0}" -le 56
for _ in $(seq 200); do [[ $(wc -l <"$tmp/half.out") -ge ${n:-1} ]] && break; sleep 0.025; done
check "replay inside received" test "$(wc -l <"$tmp/half.out")" -eq "${n:-0}"
kill "$dp" 2>/dev/null
wait "$dp" 2>/dev/null

# (d) a remote log (mcl-log --serve --root): the same warning, and the progress's total from the
# server's count.
if [[ "${MCL_HAVE_ZMQ:-1}" == 1 ]]; then
    "$bin/mcl-log" --serve zmq+tcp://127.0.0.1:0 --root "$tmp" 2>"$tmp/srv.err" &
    sp=$!
    check "server up" wait_for "$tmp/srv.err" "serving the logs under" 10
    at=$(sed -n 's/.* on \(zmq+tcp:[^ ]*\)$/\1/p' "$tmp/srv.err")
    "$bin/mcl-replay" -u "$u2" --start 60 "$at/second.mcllog" 2>"$tmp/rrep-past.err"
    check "remote past end exit 1" test $? -eq 1
    check "remote past end warning" has "$tmp/rrep-past.err" \
        "mcl-replay: --start 60 is past the end of $at/second.mcllog: its records span 0.0 to 1.0 s"
    check "remote tty exit" on_tty "$tmp/rrep.tty" "$bin/mcl-replay" -u "$u2" -s 0.4 "$at/second.mcllog"
    check "remote tty progress" rows_match "$tmp/rrep.tty" "^mcl-replay: [1-9][0-9]?/101 msgs \([0-9.]+ %\), at 0\.[0-9] s of 1\.0 s, "
    check "remote tty 100 %" rows_match "$tmp/rrep.tty" "^mcl-replay: 101/101 msgs \(100\.0 %\), at 1\.0 s of 1\.0 s, "
    kill "$sp"
    wait "$sp" 2>/dev/null
fi

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
