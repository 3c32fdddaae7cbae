#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# mcl-stat: the table of --once (topics at their rates), --json (JSON Lines), the full-screen
# monitor under tmux (keys, resize, tiny terminals, SIGTERM), log summaries (split parts,
# damaged records) and mcl-dump -f LOG --stats, a closed stdout and an early-closing pipe.
#   test_stat.sh BINDIR       (inside scripts/netns.sh, as ctest runs it)
# Exits 77 (skipped) when everything else passed but tmux is missing (scripts/setup.sh
# installs it).
set -uo pipefail
bin=${1:?usage: test_stat.sh BINDIR}
stat=$bin/mcl-stat
pub=$bin/mcl-pub
tmp=$(mktemp -d)
sock=$tmp/tmux.sock # a tmux server of our own (not the user's), in this namespace
tm() { tmux -S "$sock" "$@"; }
cleanup() {
    [[ -S $sock ]] && for s in stat_tui stat_term; do tm kill-session -t "$s" 2>/dev/null; done
    kill $(jobs -p) 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
. "$(dirname "$0")/lib.sh" # check, wait_for, has
status_is() { # status_is EXPECTED COMMAND...
    local want=$1
    shift
    timeout 60 "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    [[ $rc -eq $want ]] || { echo "  '$*' exited $rc, expected $want; stderr:" >&2; cat "$tmp/err" >&2; return 1; }
}
err_says() { grep -q -- "$1" "$tmp/err" || { echo "  stderr lacks '$1':" >&2; cat "$tmp/err" >&2; return 1; }; }
out_says() { grep -q -- "$1" "$tmp/out" || { echo "  stdout lacks '$1':" >&2; cat "$tmp/out" >&2; return 1; }; }

# The value of column COL in the row of TOPIC of a table (header line starting with TOPIC).
col() { # col FILE TOPIC COL
    python3 - "$@" <<'EOF'
import sys
path, topic, col = sys.argv[1:4]
lines = open(path, errors="replace").read().splitlines()
head = None
for l in lines:
    f = l.split()
    if f and f[0].startswith("TOPIC"):
        head = [h.rstrip("v^") for h in f]
    elif head and f and f[0] == topic:
        print(f[head.index(col)])
        break
EOF
}
near() { # near VALUE WANT PERCENT: |VALUE - WANT| <= PERCENT % of WANT
    python3 -c "import sys; v, w, p = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]); sys.exit(abs(v - w) > w * p / 100)" "$1" "$2" "$3" 2>/dev/null \
        || { echo "  $1 is not within $3 % of $2" >&2; return 1; }
}

check "--help" status_is 0 "$stat" --help
check "--help text" out_says "Usage: mcl-stat"
check "--version" status_is 0 "$stat" --version
check "--version text" out_says "mcl-stat 0."
check "bad option" status_is 2 "$stat" --no-such-option
check "bad once" status_is 2 "$stat" --once -1
check "bad interval" status_is 2 "$stat" --json --interval 0
check "-n without --json" status_is 2 "$stat" -n 3
check "bad url" status_is 2 "$stat" -u "udp://10.1.2.3:26000" --once 0.1
check "bad url message" err_says "not a multicast address"
check "missing log" status_is 2 "$stat" -f "$tmp/none"
check "missing log message" err_says "no such log"

# Publishers of two topics at known rates (bounded), started once mcl-stat listens.
u="udp://239.255.97.1:26197?iface=lo&ttl=0"
start_stat() { # start_stat NAME ARGS...: mcl-stat in the background, once it listens
    local name=$1 i
    shift
    "$stat" -v -u "$u" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
    eval "${name}_pid=$!"
    for i in $(seq 400); do
        grep -q "listening on" "$tmp/$name.err" 2>/dev/null && return 0
        sleep 0.025
    done
    echo "  mcl-stat never started: $(cat "$tmp/$name.err")" >&2
    return 1
}
publish() { # publish SECONDS: imu at 100 Hz and gnss at 10 Hz (typed), for about SECONDS
    "$pub" -u "$u" -t imu -j '{"name":"Imu","ax":0.5}' -n $(($1 * 100)) -r 100 -q &
    "$pub" -u "$u" -t gnss -s 200 -n $(($1 * 10)) -r 10 -q &
}

# --once: the table lists both topics at their rates (+-20 %), types, the publishers.
check "once starts" start_stat once --once 3
"$bin/mcl-dump" -v -u "$u" -q --stats --timeout 4 2>"$tmp/dstats.err" & # live --stats, alongside
dstats_pid=$!
check "dump --stats starts" wait_for "$tmp/dstats.err" "listening on" 10
publish 5
"$pub" -u "$u" -t $'bad\e[31mtopic\x7f' -n 3 -q hostile # a topic that tries to drive the terminal
wait "$once_pid"
check "once exit" test $? -eq 0
cp "$tmp/once.out" "$tmp/out"
check "once header" out_says "TOPIC *TYPE *PUBS *HZ *JITTER *BW/S *SIZE *LOST *LAST"
check "once imu rate" near "$(col "$tmp/out" imu HZ)" 100 20
check "once gnss rate" near "$(col "$tmp/out" gnss HZ)" 10 20
check "once imu type" test "$(col "$tmp/out" imu TYPE)" = Imu
check "once gnss untyped" test "$(col "$tmp/out" gnss TYPE)" = -
check "once gnss size" test "$(col "$tmp/out" gnss SIZE)" = 200B
check "once gnss lost" test "$(col "$tmp/out" gnss LOST)" = 0
check "once publishers" out_says "^PUBLISHER"
check "once hostile topic shown safely" out_says '^bad?\[31mtopic? '
check "once no escape byte" bash -c "! grep -q $'\e' '$tmp/out'"
check "once 80 columns" test "$(awk '{ if (length($0) > m) m = length($0) } END { print m }' "$tmp/out" | tail -1)" -le 80
wait "$dstats_pid"
check "dump --stats exit" test $? -eq 0
check "dump --stats publishers" has "$tmp/dstats.err" "^publisher "
check "dump --stats names its publishers (heartbeats)" has "$tmp/dstats.err" " mcl-pub\[[0-9]*\]@"
python3 - "$tmp/dstats.err" >"$tmp/dstats.cols" <<'EOF'
import sys
lines = open(sys.argv[1], errors="replace").read().splitlines()
head = next(i for i, l in enumerate(lines) if l.startswith("topic "))
for l in lines[head + 1:]:
    f = l.split()
    if f[0] in ("imu", "gnss"):
        print(f[0], f[1], f[3], f[5]) # topic type received Hz
EOF
check "dump --stats imu row" grep -Eq "^imu Imu [34][0-9][0-9] (8[0-9]|9[0-9]|1[01][0-9])\." "$tmp/dstats.cols"
check "dump --stats gnss row" grep -Eq "^gnss - [34][0-9] " "$tmp/dstats.cols"
wait # the publishers

# --json -n 2: two JSON Lines with the fields scripts read.
check "json starts" start_stat json --json -n 2 --interval 1
publish 3
wait "$json_pid"
check "json exit" test $? -eq 0
check "json lines" test "$(wc -l <"$tmp/json.out")" -eq 2
check "json valid" python3 - "$tmp/json.out" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
for o in rows:
    for k in ("time", "url", "elapsed_s", "totals", "topics", "publishers"):
        assert k in o, k
    for k in ("messages", "msg_per_s", "kernel_drops", "malformed", "lost"):
        assert k in o["totals"], k
last = {t["topic"]: t for t in rows[-1]["topics"]}
assert set(last) == {"imu", "gnss"}, last.keys()
imu = last["imu"]
for k in ("type", "publishers", "rate_hz", "jitter_ms", "bandwidth_bps", "size_mean", "lost",
          "last_seen", "rate_history", "by_publisher"):
    assert k in imu, k
assert imu["type"] == "Imu" and imu["publishers"] == 1, imu
assert len(imu["rate_history"]) == 16
assert len(imu["by_publisher"]) == 1 and imu["by_publisher"][0]["messages"] > 0
pubs = rows[-1]["publishers"]
assert len(pubs) == 2, pubs
for p in pubs:
    for k in ("publisher", "host", "program", "pid", "sender", "messages", "lost", "silent"):
        assert k in p, k
EOF
wait

# A closed stdout, and a pipe that closes early: no crash, no hang.
timeout 20 "$stat" -u "$u" --once 0.3 >&- 2>"$tmp/err"
rc=$?
check "closed stdout exit" test $rc -eq 1
check "closed stdout message" err_says "standard output is closed"
publish 3
timeout 20 bash -c '"$1" -u "$2" --json --interval 0.1 -n 100 | head -c 1 >/dev/null; exit "${PIPESTATUS[0]}"' _ "$stat" "$u"
rc=$?
check "early pipe close ends it (rc $rc)" test $rc -eq 0 -o $rc -eq 1 -o $rc -eq 141
timeout 20 bash -c '"$1" -u "$2" --once 0.5 | true; exit "${PIPESTATUS[0]}"' _ "$stat" "$u"
rc=$?
check "closed pipe before the table (rc $rc)" test $rc -eq 0 -o $rc -eq 1 -o $rc -eq 141
wait

# Logs: a split recording (3 parts of 100 records), summarised; then one part damaged.
n_imu=250 n_gnss=30
"$bin/mcl-log" -v -u "$u" -o "$tmp/rec" --split-count 100 2>"$tmp/log.err" &
log_pid=$!
check "log starts" wait_for "$tmp/log.err" "listening on" 10
"$pub" -u "$u" -t imu -j '{"ax":[1,{"k":2}],"name":"Imu"}' -n $n_imu -r 500 -q
"$pub" -u "$u" -t gnss -s 100 -n $n_gnss -r 500 -q
logged=false
for _ in $(seq 400); do
    kill -USR1 "$log_pid" 2>/dev/null
    sleep 0.025
    grep -q " s: $((n_imu + n_gnss)) messages," "$tmp/log.err" && { logged=true; break; }
done
check "log recorded all" $logged
kill -INT "$log_pid"
wait "$log_pid"
check "stat -f" status_is 0 "$stat" -f "$tmp/rec"
cp "$tmp/out" "$tmp/sum.txt"
check "stat -f parts" out_says "^parts: *3$"
check "stat -f part 0" out_says "rec_000.mcllog"
check "stat -f part 2" out_says "rec_002.mcllog"
check "stat -f part records" test "$(grep -c "^    100 records" "$tmp/out")" -eq 2
check "stat -f messages" out_says "^messages: *$((n_imu + n_gnss)) "
check "stat -f no damage" out_says "^damaged: *0 records"
check "stat -f start" out_says "^start: *20[0-9-]*T[0-9:.]*Z"
check "stat -f duration" out_says "^duration: *[0-9.]* s"
check "stat -f imu count" test "$(col "$tmp/out" imu COUNT)" = $n_imu
check "stat -f gnss count" test "$(col "$tmp/out" gnss COUNT)" = $n_gnss
check "stat -f imu type" test "$(col "$tmp/out" imu TYPE)" = Imu
check "stat -f gnss size" test "$(col "$tmp/out" gnss MAX)" = 100
check "stat -f topic filter" status_is 0 "$stat" -f "$tmp/rec" -t gnss
check "stat -f filtered" test "$(col "$tmp/out" gnss COUNT)" = $n_gnss -a -z "$(col "$tmp/out" imu COUNT)"
check "stat -f with -u" status_is 2 "$stat" -f "$tmp/rec" -u "$u"

# mcl-dump -f LOG --stats: the same per-topic table (on stderr).
check "dump -f --stats" status_is 0 "$bin/mcl-dump" -q -f "$tmp/rec" --stats
check "dump -f --stats imu" test "$(col "$tmp/err" imu COUNT)" = $n_imu
check "dump -f --stats gnss" test "$(col "$tmp/err" gnss COUNT)" = $n_gnss
check "dump -f --stats total" err_says "^$((n_imu + n_gnss)) records"

# The same log from a log server (mcl-log --serve --root): mcl-stat -f URL/NAME.
if [[ "${MCL_HAVE_ZMQ:-1}" == 1 ]]; then
    "$bin/mcl-log" --serve zmq+tcp://127.0.0.1:0 --root "$tmp" 2>"$tmp/serve.err" &
    serve_pid=$!
    check "serve starts" wait_for "$tmp/serve.err" "serving the logs" 10
    loc=$(grep -o 'zmq+tcp://[0-9.:]*' "$tmp/serve.err" | head -1)
    check "stat -f remote" status_is 0 "$stat" -f "$loc/rec"
    check "stat -f remote path" out_says "^path: *$loc/rec$"
    check "stat -f remote messages" out_says "^messages: *$((n_imu + n_gnss)) "
    check "stat -f remote imu" test "$(col "$tmp/out" imu COUNT)" = $n_imu
    check "stat -f remote missing" status_is 2 "$stat" -f "$loc/none"
    kill -INT "$serve_pid"
    wait "$serve_pid"
fi

# Damage: bytes flipped in the middle of the second part.
python3 - "$tmp/rec_001.mcllog" <<'EOF'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
mid = len(b) // 2
for i in range(mid, mid + 40):
    b[i] ^= 0xA5
open(p, "wb").write(b)
EOF
check "stat -f damaged" status_is 0 "$stat" -f "$tmp/rec"
check "stat -f damaged count" grep -Eq "^damaged: *[1-9][0-9]* records" "$tmp/out"
check "stat -f damaged part" grep -Eq "^    [0-9]+ records, .*, [1-9][0-9]* damaged" "$tmp/out"
check "stat -f fewer" test "$(col "$tmp/out" imu COUNT)" -lt $n_imu
check "not a log" status_is 2 "$stat" -f "$tmp/sum.txt"

# The monitor under tmux.
why=
command -v tmux >/dev/null || why="tmux missing (scripts/setup.sh installs it)"
"$stat" --help | grep -q "without ncurses" && why="mcl-stat was built without ncurses"
if [[ -n $why ]]; then
    echo "$why: the monitor was not tested" >&2
    [[ $fail -eq 0 ]] && exit 77
    echo "$pass passed, $fail failed" >&2
    exit 1
fi
screen() { tm capture-pane -p -t stat_tui >"$tmp/screen" 2>/dev/null; }
# Waits (bounded) until the screen matches the extended regex RE (or, with !, no longer).
until_screen() { # until_screen [!] RE
    local neg=false i
    [[ $1 == ! ]] && { neg=true; shift; }
    for i in $(seq 200); do
        screen
        if grep -Eq -- "$1" "$tmp/screen"; then $neg || return 0; else $neg && return 0; fi
        sleep 0.05
    done
    echo "  the screen $($neg && echo still shows || echo never showed) '$1':" >&2
    cat "$tmp/screen" >&2
    return 1
}
row_of() { grep -n -E "^-?$1 " "$tmp/screen" | head -1 | cut -d: -f1; } # row_of TOPIC
widest() { # characters (not bytes) in the longest line of the screen
    python3 -c "import sys; print(max((len(l) for l in open(sys.argv[1], encoding='utf-8', errors='replace').read().splitlines()), default=0))" "$tmp/screen"
}

publish 40 # both topics for the whole monitor test (killed at the end)
pubs=$(jobs -p)
cat >"$tmp/tui.sh" <<EOF
#!/bin/sh
"$stat" -u "$u"
echo "\$?" >"$tmp/tui.rc"
EOF
chmod +x "$tmp/tui.sh"
tm new-session -d -s stat_tui -x 100 -y 30 "$tmp/tui.sh"
check "tui rows" until_screen "^imu .*Imu"
check "tui gnss row" until_screen "^gnss "
check "tui header" until_screen "TOPIC\^ +TYPE +PUBS +HZ +JITTER +BW/S +SIZE +LOST +LAST +RATE"
check "tui url" until_screen "^mcl-stat udp://239.255.97.1:26197"
check "tui by topic" test "$(row_of gnss)" -lt "$(row_of imu)"
tm send-keys -t stat_tui s
check "tui sort Hz" until_screen "HZv"
check "tui sort status" until_screen "sort: Hz v"
check "tui busiest first" test "$(row_of imu)" -lt "$(row_of gnss)"
tm send-keys -t stat_tui r
check "tui reverse" until_screen "HZ\^"
check "tui reversed" test "$(row_of gnss)" -lt "$(row_of imu)"
tm send-keys -t stat_tui p
check "tui paused" until_screen "^\[PAUSED\] mcl-stat"
screen
cp "$tmp/screen" "$tmp/paused1"
sleep 1.2 # (a frozen screen must stay frozen while time passes: the clock, the ages)
screen
check "tui frozen" cmp -s "$tmp/paused1" "$tmp/screen"
tm send-keys -t stat_tui p
check "tui resumed" until_screen ! "PAUSED"
tm send-keys -t stat_tui / i m u Enter
check "tui filter status" until_screen "filter: imu"
check "tui filtered out" until_screen ! "^gnss "
check "tui filter keeps imu" until_screen "^imu "
tm send-keys -t stat_tui Enter # the selection (imu, the only row) shows its publisher
check "tui expanded" until_screen "^-imu "
check "tui publisher row" until_screen "^  (mcl-pub|[0-9a-f]{16})"
tm send-keys -t stat_tui Escape
check "tui filter cleared" until_screen "^gnss "
# Resized while paused: redrawn at once for the new size (the status line on the last row).
tm send-keys -t stat_tui p
check "tui paused again" until_screen "^\[PAUSED\]"
tm resize-window -t stat_tui -x 50 -y 15
last_is_status() {
    local i
    for i in $(seq 100); do
        screen
        [[ $(wc -l <"$tmp/screen") -eq 15 && $(tail -n 1 "$tmp/screen") == sort:* ]] && return 0
        sleep 0.05
    done
    echo "  the last of 15 rows is not the status line:" >&2
    cat -A "$tmp/screen" >&2
    return 1
}
check "tui redrawn when resized" last_is_status
tm send-keys -t stat_tui p
check "tui resized" until_screen "^mcl-stat"
screen
check "tui fits 50 columns" test "$(widest)" -le 50
check "tui rows after resize" until_screen "^(-imu|gnss) "
for size in "60 20" "20 5" "5 2" "1 1" "200 60" "30 8" "60 20" "2 40" "50 15"; do
    tm resize-window -t stat_tui -x ${size% *} -y ${size#* }
    sleep 0.02 # a storm: faster than the monitor redraws
done
check "tui after the storm" until_screen "^mcl-stat"
check "tui still runs" tm has-session -t stat_tui
tm send-keys -t stat_tui q
ended=false
for _ in $(seq 200); do
    tm has-session -t stat_tui 2>/dev/null || { ended=true; break; }
    sleep 0.05
done
check "tui q quits" $ended
check "tui exit 0" test "$(cat "$tmp/tui.rc" 2>/dev/null)" = 0

# SIGTERM restores the terminal: stty after mcl-stat shows canonical mode and echo again.
cat >"$tmp/term.sh" <<EOF
#!/bin/sh
"$stat" -u "$u" &
echo \$! >"$tmp/term.pid"
wait \$!
echo "\$?" >"$tmp/term.rc"
stty -a >"$tmp/term.stty"
EOF
chmod +x "$tmp/term.sh"
# (sh gives a background job /dev/null as stdin: the monitor reads keys from /dev/tty)
tm new-session -d -s stat_term -x 150 -y 20 "$tmp/term.sh"
check "term starts" wait_for "$tmp/term.pid" "[0-9]" 10
# (bounded) until the topic shows and both publishers are counted: the second one's first
# datagram or heartbeat may come a screen refresh after the first's.
two=false
for _ in $(seq 200); do
    tm capture-pane -p -t stat_term 2>/dev/null >"$tmp/term.screen"
    grep -q "^imu " "$tmp/term.screen" && grep -q ' 2 pub ' "$tmp/term.screen" && { two=true; break; }
    sleep 0.05
done
check "term publishers" $two
kill $pubs 2>/dev/null # publishers that stop (a goodbye, or missed heartbeats) show as silent
silent=false
for _ in $(seq 200); do
    tm capture-pane -p -t stat_term 2>/dev/null | grep -q " 2 pub (2 silent) " && { silent=true; break; }
    sleep 0.05
done
check "term publishers silent" $silent
kill -TERM "$(cat "$tmp/term.pid")"
check "term exit" wait_for "$tmp/term.rc" "0" 10
check "term restored" wait_for "$tmp/term.stty" " icanon" 10
check "term echo" grep -q " echo " "$tmp/term.stty"
wait

echo "$pass passed, $fail failed" >&2
[[ $fail -eq 0 ]]
