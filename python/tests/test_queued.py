# SPDX-License-Identifier: BSD-3-Clause
# QueuedListener: Python MCL's queued listener tests in spirit (raw and message forms, open and
# close, bad arguments), and the binding's promises: callbacks on the library's mcl-queued
# thread, ring drops counted, no Python code in the forked receiver, a clean interpreter exit.
import os
import subprocess
import sys
import textwrap
import threading

import pytest

import mcl
from conftest import receivers, wait_until
from test_raw import Collector


def thread_name():
    with open('/proc/self/task/%d/comm' % threading.get_native_id()) as f:
        return f.read().strip()


def test_raw_delivery_and_topics(conn):
    got, names = Collector(), []
    with mcl.QueuedListener(conn, topics=['a', 'c']) as l, mcl.RawBroadcaster(conn) as b:
        assert l.is_open and l.is_open() is True
        assert l.topics == ['a', 'c']
        l.subscribe(got)
        l.subscribe(lambda d: names.append(thread_name()))
        for t in 'abcd':
            b.publish(t.encode(), topic=t)
        items = got.wait(2)
        assert [(d['topic'], d['payload']) for d in items] == [('a', b'a'), ('c', b'c')]
        assert set(items[0]) >= {'topic', 'payload', 'time_received', 'publisher', 'sequence'}
        assert items[0]['publisher'] == b.id
        assert wait_until(lambda: len(names) == 2)
        assert names == ['mcl-queued', 'mcl-queued']
        assert l.received == 2 and l.lost == 0 and l.ring_drops == 0
        assert wait_until(lambda: l.stats['filtered'] == 2)  # refreshed when idle
    assert not l.is_open


class QMsg(mcl.Message):
    mandatory = ('x', 'y')
    connection = mcl.Connection('udp://239.255.26.1:26090?iface=lo&ttl=0')


def test_message_form():
    got = Collector()
    with mcl.QueuedListener(QMsg) as l, mcl.MessageBroadcaster(QMsg) as b, \
            mcl.RawBroadcaster(QMsg.connection) as raw:
        assert l.message is QMsg
        l.subscribe(got)
        raw.publish(b'\x01not a map')
        m = QMsg(x=1, y=[2.5, 'z'])
        b.publish(m)
        (d,) = got.wait(1)
        assert isinstance(d['payload'], QMsg) and d['payload'] == m
        assert wait_until(lambda: l.undecodable == 1)


def test_open_close_reopen(conn):
    got = Collector()
    l = mcl.QueuedListener(conn, open_init=False)
    assert not l.is_open and l.stats['receiver_pid'] == 0
    l.subscribe(got)  # before open, as in Python MCL
    assert l.open() is True and l.open() is False
    assert l.is_open() and l.receiver_pid > 0
    with mcl.RawBroadcaster(conn) as b:
        b.publish(b'1')
        assert len(got.wait(1)) == 1
        assert l.close() is True and l.close() is False and not l.is_open()
        assert l.stats['receiver_pid'] == 0
        assert l.open() is True
        b.publish(b'2')
        assert [d['payload'] for d in got.wait(2)] == [b'1', b'2']
    assert l.close() is True


@pytest.mark.parametrize('arg', ['connection', {}, 5, mcl.Message])
def test_bad_connection_argument(arg):
    with pytest.raises(TypeError, match='Connection'):
        mcl.QueuedListener(arg)


def test_bad_topics_and_url(conn):
    with pytest.raises(TypeError):
        mcl.QueuedListener(conn, topics=5)
    with pytest.raises(mcl.Error) as e:
        mcl.QueuedListener(mcl.Connection('inproc://q'))
    assert e.value.name == 'MCL_ENOTSUP'


def test_callback_exception_counted(conn, monkeypatch):
    seen = []
    monkeypatch.setattr(sys, 'unraisablehook', lambda u: seen.append(u))
    good = Collector()

    def bad(d):
        raise RuntimeError('boom')
    with mcl.QueuedListener(conn) as l, mcl.RawBroadcaster(conn) as b:
        l.subscribe(bad)
        l.subscribe(good)
        b.publish(b'1')
        b.publish(b'2')
        assert len(good.wait(2)) == 2
        assert l.callback_errors == 2 and l.is_open
    assert [str(u.exc_value) for u in seen] == ['boom', 'boom']


def test_ring_full_drops_are_counted(conn):
    release, got = threading.Event(), Collector()
    n, size = 300, 1000

    def stall(d):
        got(d)
        release.wait(10)  # the first callback blocks: the ring (64 KiB) fills up
    with mcl.QueuedListener(conn, ring_size=64 << 10) as l, mcl.RawBroadcaster(conn) as b:
        l.subscribe(stall)
        for i in range(n):
            b.publish(b'%04d' % i + b'.' * (size - 4))
        # The receiver counts every message it took from the socket (queued + dropped).
        assert wait_until(lambda: l.stats['messages'] == n), l.stats
        release.set()
        assert wait_until(lambda: l.received + l.ring_drops == n), l.stats
        assert 0 < l.ring_drops < n
        assert l.stats['ring_size'] == 64 << 10
        assert len(got.wait(l.received)) == l.received
        assert l.lost == 0


def test_large_messages_read_into_the_ring(conn):
    got = Collector()
    n, size = 40, 16384
    with mcl.QueuedListener(conn) as l, mcl.RawBroadcaster(conn) as b:
        l.subscribe(got)
        sent = [bytes([i]) * size for i in range(n)]
        for p in sent:
            b.publish(p)
        msgs = got.wait(n)
        assert [m['payload'] for m in msgs] == sent
        # All but the first (the receiver learns the size from it) came without a copy.
        assert l.stats['ring_direct'] >= n - 16, l.stats


def test_receiver_cpus(conn):
    cpu = max(os.sched_getaffinity(0))
    with mcl.QueuedListener(conn, receiver_cpus=str(cpu)) as l:
        assert os.sched_getaffinity(l.stats['receiver_pid']) == {cpu}
    with pytest.raises(mcl.Error) as e:
        mcl.QueuedListener(conn, receiver_cpus='0-x')
    assert e.value.name == 'MCL_EINVAL'


def test_close_from_own_callback(conn):
    got = Collector()
    with mcl.RawBroadcaster(conn) as b:
        l = mcl.QueuedListener(conn)

        def closer(d):
            got(d)
            assert l.close() is True and not l.is_open
        l.subscribe(closer)
        b.publish(b'1')
        assert len(got.wait(1)) == 1
        b.publish(b'2')
        assert wait_until(lambda: mcl._mcl._open_listeners() == 0)
        assert wait_until(lambda: not receivers())
    assert len(got.items) == 1


# The receiver is forked by the library's thread: Python's at-fork handlers must not run (no
# Python code in the child), the child is one thread named mcl-recv, and the interpreter's
# exit with queued listeners open (one mid-callback, one closing itself, one never opened)
# neither hangs nor crashes nor leaves a receiver behind.
EXIT_SCRIPT = textwrap.dedent('''
    import os, sys, threading, mcl
    os.register_at_fork(before=lambda: print('before', flush=True),
                        after_in_child=lambda: os.write(1, b'child ran Python\\n'))
    c = mcl.Connection(sys.argv[1])
    got, inside = threading.Event(), threading.Event()
    ls = [mcl.QueuedListener(c) for _ in range(2)]
    ls[0].subscribe(lambda d: got.set())
    def slow(d):
        inside.set()
        threading.Event().wait(0.2)    # still in a callback when the exit hook closes
    ls[1].subscribe(slow)
    closer = mcl.QueuedListener(c)
    closer.subscribe(lambda d: closer.close())
    idle = mcl.QueuedListener(c, open_init=False)
    b = mcl.RawBroadcaster(c)
    while not (got.wait(0.01) and inside.is_set()):
        b.publish(b'x')
    for l in ls:
        pid = l.receiver_pid
        with open('/proc/%d/status' % pid) as f:
            st = dict(line.split(':', 1) for line in f.read().splitlines())
        print(st['Name'].strip(), st['Threads'].strip(), st['PPid'].strip() == str(os.getpid()))
        print('pid', pid)
    for _ in range(100):
        b.publish(b'y')
    print('exiting', flush=True)
''')


def test_receiver_runs_no_python_and_exit_is_clean(url):
    r = subprocess.run([sys.executable, '-X', 'dev', '-c', EXIT_SCRIPT, url],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ''
    lines = r.stdout.splitlines()
    assert lines[-1] == 'exiting'
    assert 'before' not in lines and 'child ran Python' not in r.stdout
    assert [x for x in lines if not x.startswith('pid')] == ['mcl-recv 1 True'] * 2 + ['exiting']
    for x in lines:
        if x.startswith('pid '):
            pid = int(x.split()[1])
            # Reaped by close() at exit: gone, not a zombie or an orphan.
            assert wait_until(lambda: not os.path.exists('/proc/%d' % pid), 2.0)


def test_time_received_datetime_on_the_compatibility_connection(url):
    # Python MCL's QueuedListener put a naive UTC datetime in time_received; its connection
    # (mcl.network.udp.Connection) keeps that shape, for every listener; mcl.Connection gives
    # seconds since the epoch.
    import datetime
    from mcl.network.udp import Connection
    compat = Connection(url)
    got, got_raw, got_plain = Collector(), Collector(), Collector()
    with mcl.QueuedListener(compat) as q, mcl.RawListener(compat) as r, \
            mcl.RawListener(mcl.Connection(url)) as p, mcl.RawBroadcaster(compat) as b:
        q.subscribe(got)
        r.subscribe(got_raw)
        p.subscribe(got_plain)
        before = datetime.datetime.utcnow()
        b.publish('hello')
        items = got.wait(1) + got_raw.wait(1)
        after = datetime.datetime.utcnow()
        assert len(items) == 2
        for d in items:
            t = d['time_received']
            assert isinstance(t, datetime.datetime) and t.tzinfo is None
            assert before - datetime.timedelta(seconds=1) <= t <= after
        plain = got_plain.wait(1)[0]['time_received']
        assert isinstance(plain, float)
        t = items[1]['time_received'].replace(tzinfo=datetime.timezone.utc).timestamp()
        assert abs(t - plain) < 0.5  # the same clock (two listeners: two receive times)


def test_fork_in_the_parent_is_safe(url):
    # os.fork() with a raw listener (a thread blocked in its iteration too), a queued listener
    # and a broadcaster open. The child closes what it inherited (also through the atexit hook),
    # publishes with a broadcaster of its own and exits: no hang (alarm), and the parent's
    # listeners go on with the same receiver, no restart, nothing lost, no goodbye.
    import signal
    conn = mcl.Connection(url)
    got_q, got_r = Collector(), Collector()
    q = mcl.QueuedListener(conn)
    q.subscribe(got_q)
    r = mcl.RawListener(conn)
    r.subscribe(got_r)
    it = mcl.RawListener(conn)
    it.timeout = 0.05
    stop = threading.Event()
    iterated = []

    def iterate():  # holds the listener's lock while it waits, as recv() does
        while not stop.is_set():
            for d in it:
                iterated.append(d['payload'])

    t = threading.Thread(target=iterate)
    t.start()
    b = mcl.RawBroadcaster(conn)
    b.publish(b'first')
    assert got_q.wait(1) and got_r.wait(1)
    receiver = q.receiver_pid
    for round in range(3):
        pid = os.fork()
        if pid == 0:  # the child: never back into pytest
            code = 1
            try:
                signal.alarm(10)
                with mcl.RawBroadcaster(conn) as mine:
                    mine.publish(b'child %d' % round)
                b.close()
                if round == 0:
                    q.close()
                    r.close()
                    it.close()
                mcl._mcl._shutdown()  # what atexit runs: closes whatever is still open
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    b.publish(b'last')
    want = [b'first', b'child 0', b'child 1', b'child 2', b'last']
    assert [d['payload'] for d in got_q.wait(5)] == want
    assert [d['payload'] for d in got_r.wait(5)] == want
    assert wait_until(lambda: len(iterated) == 5)
    assert q.receiver_pid == receiver and q.restarts == 0 and q.lost == 0 and r.lost == 0
    assert q.is_open and r.is_open and it.is_open
    stop.set()
    t.join(5)
    for x in (it, r, q, b):
        x.close()
