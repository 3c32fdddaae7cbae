# SPDX-License-Identifier: BSD-3-Clause
# Shared fixtures: a fresh loopback URL per test (distinct port), a deadline-based wait, and
# a check after every test that it left no listener open and no mcl thread running.
import gc
import itertools
import os
import time

import pytest

import mcl
from mcl import _mcl

GROUP = '239.255.26.1'
_ports = itertools.count(26101)


def udp_url(port=None):
    return 'udp://%s:%d?iface=lo&ttl=0' % (GROUP, next(_ports) if port is None else port)


@pytest.fixture
def url():
    return udp_url()


@pytest.fixture
def conn(url):
    return mcl.Connection(url)


def wait_until(cond, timeout=5.0):
    """Poll cond() until true or the deadline passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(0.005)


def receivers():
    """Queued listeners' receiver processes (mcl-recv) that are children of this process."""
    me = str(os.getpid())
    found = []
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % pid) as f:
                st = f.read()
        except OSError:
            continue
        comm = st[st.index('(') + 1:st.rindex(')')]
        fields = st[st.rindex(')') + 2:].split()
        if comm == 'mcl-recv' and fields[1] == me:
            found.append(int(pid))
    return found


def mcl_threads():
    names = []
    for tid in os.listdir('/proc/self/task'):
        try:
            with open('/proc/self/task/%s/comm' % tid) as f:
                n = f.read().strip()
        except OSError:
            continue
        if n.startswith('mcl-listener') or n.startswith('mcl-queued'):
            names.append(n)
    return names


@pytest.fixture(autouse=True)
def no_leaks():
    before = _mcl._open_listeners()
    yield
    gc.collect()
    # A deferred close (from a callback) runs as a pending call: give it its chance.
    assert wait_until(lambda: _mcl._open_listeners() <= before, 2.0), \
        'listeners left open: %d' % (_mcl._open_listeners() - before)
    assert wait_until(lambda: not mcl_threads(), 2.0), 'threads left: %s' % mcl_threads()
    assert wait_until(lambda: not receivers(), 2.0), 'receivers left: %s' % receivers()
