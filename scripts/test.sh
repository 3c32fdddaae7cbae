#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The test command: install what is missing, build with ASan+UBSan, run every test. The
# network tests run inside a private network namespace (scripts/netns.sh), so no datagram
# leaves this machine.
#
#   scripts/test.sh              all tests, sanitizer build (build/asan), valgrind (build/plain),
#                                a build without ZeroMQ (build/nozmq; also runs the Python
#                                suite, ctest label python), and short libFuzzer runs
#                                (build/fuzz, clang; MCL_FUZZ_SECONDS per target, default 30)
#   scripts/test.sh --no-valgrind   skip the second pass of the suites under valgrind (build/plain)
#   scripts/test.sh --no-fuzz    skip the libFuzzer runs (the corpora still replay in ctest)
#   scripts/test.sh --no-package skip building and checking the Debian packages (build/package)
#   scripts/test.sh -L unit      extra arguments go to ctest (here: only the unit tests)
set -euo pipefail
cd "$(dirname "$0")/.."

valgrind=1
fuzz=1
package=1
ctest_args=()
for a in "$@"; do
    case "$a" in
    --no-valgrind) valgrind=0 ;;
    --no-fuzz) fuzz=0 ;;
    --no-package) package=0 ;;
    *) ctest_args+=("$a") ;;
    esac
done

scripts/setup.sh
jobs=$(nproc 2>/dev/null || echo 2)

build=build/asan
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DMCL_SANITIZE=address,undefined >/dev/null
cmake --build "$build" -j"$jobs" >/dev/null

status=0
if [[ $valgrind -eq 1 ]]; then
    plain=build/plain
    cmake -S . -B "$plain" -DCMAKE_BUILD_TYPE=Debug -DMCL_SANITIZE= >/dev/null
    cmake --build "$plain" -j"$jobs" >/dev/null
    echo "== valgrind (memcheck) =="
    # The suites ctest knows (not stale binaries of suites renamed since).
    mapfile -t suites < <(grep -o '^add_test(\[=\[[a-z_0-9]*\]=\] "[^"]*/test_[a-z_0-9]*"' \
        "$plain/tests/CTestTestfile.cmake" | sed 's/.* "\(.*\)"$/\1/' | sort -u)
    for t in "${suites[@]}"; do
        scripts/netns.sh valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
            "$t" >"$plain/$(basename "$t").valgrind.log" 2>&1 \
            && echo "valgrind: $(basename "$t") clean" \
            || { rc=$?; [[ $rc -eq 77 ]] && echo "valgrind: $(basename "$t") skipped" || { echo "valgrind: $(basename "$t") FAILED (see $plain/$(basename "$t").valgrind.log)"; status=1; }; }
    done
fi

# The same tree without libzmq (MCL_WITH_ZMQ=OFF): it builds, links no libzmq, and its suites
# pass (the zmq ones are left out or skip).
nozmq=build/nozmq
cmake -S . -B "$nozmq" -DCMAKE_BUILD_TYPE=Debug -DMCL_WITH_ZMQ=OFF -DMCL_BUILD_BENCH=OFF >/dev/null
cmake --build "$nozmq" -j"$jobs" >/dev/null
echo "== ctest without ZeroMQ =="
if ldd "$nozmq/libmcl.so" | grep -q libzmq; then
    echo "MCL_WITH_ZMQ=OFF: libmcl.so links libzmq"
    status=1
fi
# The Python suite (ctest label python) runs here: the ASan build does not register it (an
# ASan extension cannot load into an interpreter built without ASan).
scripts/netns.sh ctest --test-dir "$nozmq" --output-on-failure -j"$jobs" -L 'unit|cmd|python' || status=1

echo "== ctest (ASan+UBSan) =="
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
scripts/netns.sh ctest --test-dir "$build" --output-on-failure -j"$jobs" "${ctest_args[@]}" || status=1

# The Debian packages: built (release, prefix /usr), installed with dpkg in a throwaway overlay
# of this machine's /usr, /etc and /var, used there (tools, man pages, a pkg-config and a
# find_package consumer) and removed again (scripts/package.sh --check).
if [[ $package -eq 1 ]]; then
    echo "== Debian packages (scripts/package.sh --check) =="
    scripts/package.sh --check || { rc=$?; [[ $rc -eq 77 ]] && echo "packages: check skipped (needs root)" || status=1; }
fi

# Every fuzz target for a short while, from its committed corpus (copied: new inputs stay in
# build/fuzz/work). A crash, leak, timeout (5 s per input) or 2 GiB of memory fails the run; the
# input that did it is kept in build/fuzz/work.
if [[ $fuzz -eq 1 ]]; then
    echo "== fuzz (libFuzzer, ${MCL_FUZZ_SECONDS:-30} s per target: scripts/fuzz.sh) =="
    scripts/fuzz.sh all "${MCL_FUZZ_SECONDS:-30}" || status=1
fi
exit $status
