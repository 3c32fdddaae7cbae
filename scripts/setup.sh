#!/usr/bin/env bash
# Installs the Debian packages mcl needs to build, test and run its demo. Does nothing when
# they are all present. Needs root (or sudo) only when something is missing.
set -euo pipefail

packages=(
    gcc make cmake pkg-config           # toolchain
    libmsgpack-dev libjansson-dev       # message encoding (msgpack) and JSON
    libzmq3-dev                         # ZeroMQ transport (later layer)
    libcunit1-dev                       # tests
    libsodium-dev                       # authentication and encryption (later layers)
    iproute2 util-linux procps          # ip, unshare, sysctl: the private test network
    bsdutils                            # script: the tools' progress tests run on a pty
    valgrind jq                         # scripts/test.sh: memcheck pass; JSON checks
    libncurses-dev tmux                 # mcl-stat's monitor; its test drives it under tmux
    clang libclang-rt-14-dev            # scripts/test.sh: libFuzzer targets (fuzz/)
)

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
