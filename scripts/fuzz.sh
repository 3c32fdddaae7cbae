#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The fuzzing campaign: libFuzzer targets (fuzz/fuzz_*.c) built with clang and
# -fsanitize=fuzzer,address,undefined in build/fuzz, each started from its committed corpus
# (fuzz/corpus/TARGET, copied: new inputs stay in build/fuzz/work/TARGET/corpus).
#
#   scripts/fuzz.sh                    every target, 30 s each (what scripts/test.sh runs)
#   scripts/fuzz.sh TARGET [SECONDS]   one target (e.g. raw_wire 3600)
#   scripts/fuzz.sh all SECONDS        every target, SECONDS each
#   scripts/fuzz.sh --list             the targets
# Environment: MCL_FUZZ_SECONDS (default 30).
#
# A crash, leak, timeout (5 s per input) or 2 GiB of memory fails the run; the input that did it
# is kept in build/fuzz/work/TARGET (crash-*, leak-*, timeout-*, oom-*). Turn each into a
# regression test: copy it into fuzz/corpus/TARGET/ (the replay_TARGET ctest then runs it on
# every build) and fix the code. The long campaign (docs/security.md): every target for at least
# 10 million executions, e.g. `scripts/fuzz.sh all 3600`, the line per target says how many.
set -euo pipefail
cd "$(dirname "$0")/.."

targets_all() { sed -n 's/^set(MCL_FUZZ_TARGETS \(.*\))$/\1/p' fuzz/CMakeLists.txt | tr ' ' '\n'; }
if [[ ${1:-} == --list ]]; then
    targets_all
    exit 0
fi
secs=${2:-${MCL_FUZZ_SECONDS:-30}}
if [[ -z ${1:-} || ${1:-} == all ]]; then
    mapfile -t targets < <(targets_all)
else
    targets_all | grep -qx "$1" || { echo "fuzz.sh: no target '$1' (scripts/fuzz.sh --list)" >&2; exit 2; }
    targets=("$1")
fi
command -v clang >/dev/null || { echo "fuzz.sh: clang is needed (scripts/setup.sh installs it)" >&2; exit 1; }

fz=build/fuzz
jobs=$(nproc 2>/dev/null || echo 2)
CC=clang cmake -S . -B "$fz" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMCL_FUZZ=ON \
    -DMCL_SANITIZE=address,undefined -DMCL_BUILD_TOOLS=OFF -DMCL_BUILD_BENCH=OFF \
    -DMCL_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$fz" -j"$jobs" --target "${targets[@]/#/fuzz_}" >/dev/null

status=0
for t in "${targets[@]}"; do
    work="$fz/work/$t"
    mkdir -p "$work/corpus"
    cp -n fuzz/corpus/"$t"/* "$work/corpus/" 2>/dev/null || true
    if (cd "$work" && ASAN_OPTIONS=detect_leaks=1 "../../fuzz/fuzz_$t" -max_total_time="$secs" \
            -timeout=5 -rss_limit_mb=2048 -print_final_stats=1 corpus >log 2>&1); then
        echo "fuzz: $t $(grep -o 'number_of_executed_units: *[0-9]*' "$work/log" | grep -o '[0-9]*$') runs in $secs s, no crash"
    else
        echo "fuzz: $t FAILED (see $work/log and the crash-* input there)"
        status=1
    fi
done
exit $status
