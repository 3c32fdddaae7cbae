# SPDX-License-Identifier: BSD-3-Clause
# Helpers the tool test scripts source: counted checks and bounded waits.
#   . "$(dirname "$0")/lib.sh"
pass=0
fail=0
check() { # check NAME CONDITION...: counts CONDITION's outcome, says which failed
    local name=$1
    shift
    if "$@"; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        echo "FAIL: $name" >&2
    fi
}
wait_for() { # wait_for FILE TEXT SECONDS: bounded wait until FILE contains TEXT
    local i
    for i in $(seq $(($3 * 40))); do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.025
    done
    echo "  '$2' never appeared in $1:" >&2
    cat "$1" >&2
    return 1
}
has() { # has FILE TEXT: FILE contains TEXT (else shows FILE)
    grep -q -- "$2" "$1" || { echo "  '$2' not in $1:" >&2; cat "$1" >&2; return 1; }
}
second_namespace() { # second_namespace LINK NET: a namespace held open by a sleeping process
    # ($holder; reach it with nsenter -t "$holder" -n --), joined to this one by a veth pair
    # LINK0 (here, NET.1/24) - LINK1 (there, NET.2/24, with lo up). Returns 1 when this host
    # cannot (no veth); the caller's cleanup deletes LINK0 and kills its jobs.
    local link=$1 net=$2 i
    ip link add "${link}0" type veth peer name "${link}1" 2>/dev/null || return 1
    unshare -n sleep 300 &
    holder=$!
    for i in $(seq 200); do
        [[ "$(readlink /proc/$holder/ns/net 2>/dev/null)" != "$(readlink /proc/self/ns/net)" ]] && break
        sleep 0.01
    done
    ip link set "${link}1" netns "$holder" || return 1
    ip addr add "$net.1/24" dev "${link}0"
    ip link set "${link}0" up
    nsenter -t "$holder" -n -- ip addr add "$net.2/24" dev "${link}1"
    nsenter -t "$holder" -n -- ip link set "${link}1" up
    nsenter -t "$holder" -n -- ip link set lo up
}
