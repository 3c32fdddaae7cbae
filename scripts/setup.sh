#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Installs the Debian packages mcl needs. Does nothing when they are all present. Needs root
# (or sudo) only when something is missing.
#
#   scripts/setup.sh            what building, testing (scripts/test.sh) and the demo need
#   scripts/setup.sh --build    only what building the library and tools and running the
#                               demo need (scripts/demo.sh)
#
# Minimum versions (README.md, "Dependencies"): CMake 3.20, libzmq 4.3.2, msgpack-c 1.0,
# jansson 2.7, libsodium 1.0.9; Debian 12 (bookworm) has them all.
set -euo pipefail

mode=all
case "${1:-}" in
"") ;;
--build) mode=build ;;
*)
    echo "usage: scripts/setup.sh [--build]" >&2
    exit 2
    ;;
esac

# Building the library and the tools (CMakeLists.txt, cmd/CMakeLists.txt), and the demo's
# private network (scripts/netns.sh).
packages=(
    gcc libc6-dev make cmake pkg-config # toolchain (libc6-dev: only recommended by gcc, and
                                        # recommends are not installed below)
    libmsgpack-dev libjansson-dev       # message encoding (msgpack) and JSON
    libsodium-dev                       # group keys, authentication, encryption (lib/core/gkey.c,
                                        # lib/raw/auth.c)
    libzmq3-dev                         # the zmq+ transports (MCL_WITH_ZMQ=AUTO builds them if found)
    libzstd-dev liblz4-dev              # compress=zstd|lz4 and compressed logs (lib/core/zcodec.c;
                                        # MCL_WITH_ZSTD/LZ4=AUTO build each if found)
    libncurses-dev                      # mcl-stat's live screen (optional: without, a table)
    iproute2 util-linux procps          # ip, unshare, sysctl: the private network (netns.sh)
)
# The tests (scripts/test.sh, tests/): CUnit suites, the shell tests' helpers, the valgrind
# pass and the libFuzzer runs.
if [[ $mode == all ]]; then
    packages+=(
        libcunit1-dev                   # the CUnit suites (tests/CMakeLists.txt)
        bsdutils                        # script: progress lines tested on a pty
        tmux                            # mcl-stat's screen tested under tmux
        jq python3                      # JSON checks and helpers in tests/cmd/*.sh
        python3-dev python3-pytest      # the Python package and its pytest suite (python/)
        python3-numpy                   # mcl.log to_numpy() in that suite
        python3-pandas                  # mcl.log to_pandas() in that suite (optional for users)
        python3-matplotlib              # python/examples/plot_sim.py, run by that suite
        valgrind                        # scripts/test.sh: memcheck pass
        clang libclang-rt-dev           # scripts/test.sh, scripts/fuzz.sh: libFuzzer (fuzz/)
    )
fi

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi

echo "setup: installing ${missing[*]}" >&2
sudo=()
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "setup: need root or sudo to install ${missing[*]}" >&2; exit 1; }
    sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done" >&2
