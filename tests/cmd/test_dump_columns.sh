#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# mcl-dump's line width: --columns N cuts the human format to N columns (compact lines, '...'
# where cut), a terminal gets its own width by default (a pty from `script`, sized with stty),
# a pipe the long format uncut; --stats tables and totals fit 100 columns.
#   test_dump_columns.sh BIN_DIR DATA_DIR   (DATA_DIR: tests/data/mcl, Python MCL logs)
set -u
bin=$1
data=$2
dump=$bin/mcl-dump
. "$(dirname "$0")/lib.sh" # check, wait_for, has
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
log=$data/UnitTestMessageA.log

# Widest line in characters (UTF-8), CRs of a pty removed.
widest() { python3 -c "import sys; print(max((len(l.rstrip('\r')) for l in open(sys.argv[1], encoding='utf-8').read().splitlines()), default=0))" "$1"; }

# A pipe: the long format, as before (full ISO time, uncut).
"$dump" -f "$log" >"$tmp/long" 2>"$tmp/err"
check "pipe: exit 0" test $? -eq 0
check "pipe: long format (ISO time)" grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z  ' "$tmp/long"
check "pipe: lines longer than 60 kept" test "$(widest "$tmp/long")" -gt 60
check "pipe: no cut" bash -c "! grep -q '\.\.\.\$' '$tmp/long'"
"$dump" -f "$log" --columns 0 >"$tmp/zero" 2>&1
check "--columns 0: the long format" cmp -s "$tmp/long" "$tmp/zero"

# --columns 40: compact lines (time of day), none wider than 40, the long ones cut with "...".
"$dump" -f "$log" --columns 40 >"$tmp/c40" 2>"$tmp/err"
check "--columns 40: exit 0" test $? -eq 0
check "--columns 40: as many lines" test "$(wc -l <"$tmp/c40")" -eq "$(wc -l <"$tmp/long")"
check "--columns 40: at most 40 columns" test "$(widest "$tmp/c40")" -le 40
check "--columns 40: compact time of day" grep -Eq '^[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}  ' "$tmp/c40"
check "--columns 40: cut lines end in ..." grep -q '\.\.\.$' "$tmp/c40"
"$dump" -f "$log" --columns 1000 >"$tmp/c1000" 2>&1
check "--columns 1000: compact, nothing cut" bash -c "! grep -q '\.\.\.\$' '$tmp/c1000'"
check "--columns 1000: shorter than the long format" test "$(widest "$tmp/c1000")" -lt "$(widest "$tmp/long")"

for bad in 5 19 abc -1; do
    "$dump" -f "$log" --columns "$bad" >/dev/null 2>"$tmp/err"
    check "--columns $bad: usage error" test $? -eq 2
done

# A terminal 50 columns wide: its width by default ('…' in a UTF-8 locale, counted as one).
if command -v script >/dev/null; then
    LC_ALL=C.UTF-8 script -qec "stty cols 50 rows 20; '$dump' -f '$log'" /dev/null >"$tmp/tty" 2>&1
    check "tty: exit 0" test $? -eq 0
    check "tty: at most 50 columns" test "$(widest "$tmp/tty")" -le 50
    check "tty: compact" grep -Eq '^[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}  ' "$tmp/tty"
    check "tty: cut with …" grep -q '…' "$tmp/tty"
    LC_ALL=C.UTF-8 script -qec "stty cols 50 rows 20; '$dump' -f '$log' --columns 0" /dev/null >"$tmp/tty0" 2>&1
    check "tty --columns 0: long lines" test "$(widest "$tmp/tty0")" -gt 50
fi

# --stats on live traffic (needs the private network: scripts/netns.sh): tables within 100.
if [[ "${MCL_NETNS:-}" == 1 ]]; then
    u="udp://239.255.26.1:26600?iface=lo&ttl=0"
    "$dump" -u "$u" -q --stats -n 175 --timeout 10 -v 2>"$tmp/stats" &
    d=$!
    if wait_for "$tmp/stats" "listening on" 5; then
        "$bin/mcl-sim" -u "$u" -d 1 -q
    fi
    wait "$d"
    check "stats: exit 0" test $? -eq 0
    check "stats: totals" has "$tmp/stats" "total: received 175 .*lost 0, duplicates 0"
    check "stats: every line within 100 columns" test "$(widest "$tmp/stats")" -le 100
    check "stats: the topic table" grep -Eq '^camera/front +CameraFrame +1 +5 ' "$tmp/stats"
fi

echo "test_dump_columns: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
