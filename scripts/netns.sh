#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Run a command in a private network namespace, so that no datagram can leave this machine.
#
#   scripts/netns.sh COMMAND [ARG]...
#
# The namespace has:
#   - lo up, with the MULTICAST flag and the route 224.0.0.0/4 (IPv4 multicast on loopback);
#   - a veth pair mcl0 <-> mcl1 (both ends in this namespace, not connected to anything else)
#     with IPv6 addresses fd6d:636c::1/64 and fd6d:636c::2/64 and a multicast route on mcl0,
#     because Linux does not loop IPv6 multicast on lo.
# MCL_NETNS=1 is exported inside, and MCL_NETNS_IFACE6=mcl0 names the IPv6 test interface.
# Needs root or unprivileged user namespaces (then `unshare -rn` is used).
set -euo pipefail

if [[ $# -eq 0 ]]; then
    echo "usage: $0 COMMAND [ARG]..." >&2
    exit 2
fi

if [[ "${MCL_NETNS_INSIDE:-}" != 1 ]]; then
    if [[ $(id -u) -eq 0 ]]; then
        exec env MCL_NETNS_INSIDE=1 unshare -n -- "$0" "$@"
    else
        exec env MCL_NETNS_INSIDE=1 unshare -rn -- "$0" "$@"
    fi
fi

# Inside the new namespace: refuse to run if anything but our own interfaces exists.
# (/sys/class/net still shows the parent's sysfs, so ask the kernel through ip.)
for dev in $(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1); do
    case "$dev" in lo) ;; *) echo "netns.sh: unexpected interface $dev in the namespace" >&2; exit 1 ;; esac
done

ip link set lo up
ip link set lo multicast on
ip route add 224.0.0.0/4 dev lo

# IPv6: no duplicate address detection (addresses usable at once), a veth pair.
sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 2>/dev/null || true
if ip link add mcl0 type veth peer name mcl1 2>/dev/null; then
    ip link set mcl0 up
    ip link set mcl1 up
    ip -6 addr add fd6d:636c::1/64 dev mcl0 nodad
    ip -6 addr add fd6d:636c::2/64 dev mcl1 nodad
    ip -6 route add ff00::/8 dev mcl0 table local metric 1 2>/dev/null || ip -6 route add ff00::/8 dev mcl0 2>/dev/null || true
    export MCL_NETNS_IFACE6=mcl0
else
    echo "netns.sh: no veth support; IPv6 multicast tests will be skipped" >&2
fi

export MCL_NETNS=1
unset MCL_NETNS_INSIDE
exec "$@"
