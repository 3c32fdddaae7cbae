# SPDX-License-Identifier: BSD-3-Clause
# Raw broadcasters and listeners: the Python MCL network tests in spirit (topic filters, large
# payloads, publish after close, second close) and the binding's own promises (dict keys,
# iteration, statistics, errors, callbacks that raise or close, the GIL, interpreter exit).
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import mcl
from conftest import mcl_threads, udp_url, wait_until


class Collector:
    def __init__(self):
        self.items = []
        self.cond = threading.Condition()

    def __call__(self, d):
        with self.cond:
            self.items.append(d)
            self.cond.notify_all()

    def wait(self, n, timeout=5.0):
        with self.cond:
            self.cond.wait_for(lambda: len(self.items) >= n, timeout)
            return list(self.items)


def test_roundtrip_dict(conn):
    with mcl.RawListener(conn) as l, mcl.RawBroadcaster(conn, topic='imu') as b:
        got = Collector()
        l.subscribe(got)
        b.publish(b'one')
        b.publish(bytearray(b'two'), topic='gnss')
        b.publish(memoryview(b'three'))
        items = got.wait(3)
    assert [d['payload'] for d in items] == [b'one', b'two', b'three']
    assert [d['topic'] for d in items] == ['imu', 'gnss', 'imu']
    assert [d['sequence'] for d in items] == [0, 1, 2]
    assert {d['publisher'] for d in items} == {b.id}
    d = items[0]
    assert set(d) == {'topic', 'payload', 'time_received', 'publisher', 'sequence', 'sender'}
    assert abs(d['time_received'] - time.time()) < 60
    assert d['sender'].startswith('127.0.0.1:')


def test_no_topic_is_none(conn):
    with mcl.RawListener(conn, timeout=5) as l, mcl.RawBroadcaster(conn) as b:
        b.publish(b'x')
        assert l.recv(5)['topic'] is None


@pytest.mark.parametrize('topics,expect', [
    (None, ['a', 'b', 'c/x', None]),
    ('', ['a', 'b', 'c/x', None]),
    ([], ['a', 'b', 'c/x', None]),
    ('a', ['a']),
    (['a', 'b'], ['a', 'b']),
    (['c/*'], ['c/x']),
    ([''], [None]),
])
def test_topic_filter(conn, topics, expect):
    with mcl.RawListener(conn, topics=topics, timeout=5) as l, \
            mcl.RawListener(conn, timeout=5) as everything, mcl.RawBroadcaster(conn) as b:
        assert l.topics == topics
        for t in ('a', 'b', 'c/x', None):
            b.publish(t.encode() if t else b'none', topic=t)
        # The unfiltered listener sees all four: then the filtered one has had its chance.
        assert [everything.recv(5)['topic'] for _ in range(4)] == ['a', 'b', 'c/x', None]
        got = []
        while len(got) < len(expect):
            d = l.recv(5)
            assert d is not None, 'only %r arrived' % got
            got.append(d['topic'])
        assert got == expect
        assert l.recv(0.2) is None  # reads (and filters) the rest
        assert l.stats['filtered'] == 4 - len(expect)


@pytest.mark.parametrize('topics', [5, False, ['A', 5], object()])
def test_bad_topics(conn, topics):
    with pytest.raises(TypeError):
        mcl.RawListener(conn, topics=topics)


@pytest.mark.parametrize('size', [60000, 333300])
def test_large_payload(conn, size):
    data = bytes((i * 7 + i // 256) & 0xff for i in range(size))
    with mcl.RawListener(conn, timeout=5) as l, mcl.RawBroadcaster(conn) as b:
        b.publish(data, topic='big')
        d = l.recv(5)
        assert d is not None
        assert d['topic'] == 'big' and len(d['payload']) == size and d['payload'] == data
        # 333300 bytes are fragmented (datagrams of at most 65000 bytes) and reassembled.
        assert (b.stats['datagrams'] > 1) == (size > 65000)


@pytest.mark.parametrize('codec', ['zstd', 'lz4'])
def test_compressed(codec):
    # compress= on the URL: a 100 kB payload goes compressed (counted on both sides) and arrives
    # whole; a 100-byte one (under compress_min) goes as it is.
    conn = mcl.Connection(udp_url() + '&compress=' + codec)
    data = b''.join(b'imu %05d x=0.5 y=1.25\n' % i for i in range(5000))
    with mcl.RawListener(conn, timeout=5) as l, mcl.RawBroadcaster(conn) as b:
        b.publish(data, topic='big')
        b.publish(b'x' * 100, topic='small')
        d = l.recv(5)
        assert d is not None and d['payload'] == data
        d = l.recv(5)
        assert d is not None and d['payload'] == b'x' * 100
        st = b.stats
        assert st['compressed'] == 1 and st['compressed_in'] == len(data)
        assert 0 < st['compressed_out'] < len(data) // 3
        assert l.stats['compressed'] == 1
        assert l.stats['compressed_bytes'] == st['compressed_out']
        assert l.stats['undecompressed'] == 0


def test_publish_after_close_raises(conn):
    b = mcl.RawBroadcaster(conn)
    assert b.is_open and b.is_open()
    assert b.close() is True
    assert not b.is_open and not b.is_open()
    with pytest.raises(mcl.Error) as e:
        b.publish(b'late')
    assert e.value.code == mcl._mcl.MCL_ECLOSED and e.value.name == 'MCL_ECLOSED'
    assert 'closed' in str(e.value)


def test_second_close_harmless(conn):
    b = mcl.RawBroadcaster(conn)
    l = mcl.RawListener(conn)
    assert b.close() is True and b.close() is False
    assert l.close() is True and l.close() is False
    assert not l.is_open


def test_context_managers_close(conn):
    with mcl.RawListener(conn) as l, mcl.RawBroadcaster(conn) as b:
        assert l.is_open and b.is_open
    assert not l.is_open and not b.is_open


def test_non_bytes_payload_sends_nothing(conn):
    with mcl.RawListener(conn) as l, mcl.RawBroadcaster(conn) as b:
        for bad in ('text', 5, None, [1, 2], {'a': 1}):
            with pytest.raises(TypeError, match='bytes-like'):
                b.publish(bad)
        with pytest.raises(TypeError, match='topic'):
            b.publish(b'x', topic=5)
        assert b.stats['messages'] == 0
        b.publish(b'ok')
        assert l.recv(5)['payload'] == b'ok'


def test_bad_url_raises_mcl_error():
    with pytest.raises(mcl.Error) as e:
        mcl.Connection('udp://10.0.0.1:26000')
    assert e.value.code == mcl._mcl.MCL_EURL
    assert 'not a multicast address' in str(e.value)
    with pytest.raises(TypeError):
        mcl.RawBroadcaster('udp://239.255.26.1:1')


def test_iteration_stops_after_timeout(conn):
    with mcl.RawListener(conn, timeout=0.3) as l, mcl.RawBroadcaster(conn) as b:
        for i in range(5):
            b.publish(b'%d' % i)
        t0 = time.monotonic()
        got = [d['payload'] for d in l]
        took = time.monotonic() - t0
    assert got == [b'0', b'1', b'2', b'3', b'4']
    assert 0.25 <= took < 3


def test_iteration_ends_when_closed_from_another_thread(conn):
    l = mcl.RawListener(conn)  # no timeout: iterates until closed
    t = threading.Timer(0.2, l.close)
    t.start()
    t0 = time.monotonic()
    assert list(l) == []
    assert time.monotonic() - t0 < 3
    t.join()


def test_recv_refused_once_callbacks_run(conn):
    with mcl.RawListener(conn) as l:
        l.subscribe(lambda d: None)
        with pytest.raises(mcl.Error) as e:
            l.recv(0.1)
        assert e.value.name == 'MCL_ESTATE'


def test_gil_released_while_waiting(conn):
    # recv() waits in another thread; if it held the GIL, this thread could not publish
    # until the recv had timed out (and the recv would return None).
    with mcl.RawListener(conn) as l, mcl.RawBroadcaster(conn) as b:
        out = []
        started = threading.Event()

        def rx():
            started.set()
            out.append(l.recv(10))
        t = threading.Thread(target=rx)
        t.start()
        started.wait()
        t0 = time.monotonic()
        b.publish(b'ping')
        t.join(10)
        assert time.monotonic() - t0 < 5
        assert out and out[0] is not None and out[0]['payload'] == b'ping'


def test_callback_exception_reported_and_listener_survives(conn, monkeypatch):
    seen = []
    monkeypatch.setattr(sys, 'unraisablehook', lambda u: seen.append(u))
    good = Collector()

    def bad(d):
        raise RuntimeError('boom %s' % d['payload'].decode())
    with mcl.RawListener(conn) as l, mcl.RawBroadcaster(conn) as b:
        l.subscribe(bad)
        l.subscribe(good)
        b.publish(b'1')
        b.publish(b'2')
        assert len(good.wait(2)) == 2  # the second callback still ran, twice
        assert l.callback_errors == 2
        assert l.is_open
    assert [str(u.exc_value) for u in seen] == ['boom 1', 'boom 2']
    assert all(u.object is bad for u in seen)


def test_close_from_own_callback(conn):
    got = Collector()
    with mcl.RawBroadcaster(conn) as b:
        l = mcl.RawListener(conn)

        def closer(d):
            got(d)
            assert l.close() is True
            assert l.close() is False  # already closing: harmless
            assert not l.is_open
        l.subscribe(closer)
        b.publish(b'1')
        assert len(got.wait(1)) == 1
        for _ in range(3):
            b.publish(b'more')
        # The deferred close runs on this thread: the listener's thread ends while `l` is
        # still referenced here.
        assert wait_until(lambda: mcl._mcl._open_listeners() == 0)
        assert wait_until(lambda: not mcl_threads())
        assert l.received >= 1  # statistics stay readable after close
    assert len(got.items) == 1  # no callback after the close
    assert not l.is_open and l.close() is False


def test_unsubscribe(conn):
    got = Collector()
    with mcl.RawListener(conn) as l, mcl.RawBroadcaster(conn) as b:
        assert l.subscribe(got) is True
        assert l.subscribe(got) is False
        b.publish(b'1')
        got.wait(1)
        assert l.unsubscribe(got) is True and l.unsubscribe(got) is False
        assert l.callbacks == ()


def test_statistics_count_loss_and_duplicates():
    c = mcl.Connection('inproc://stats?drop=0.2&dup=0.2&seed=7')
    n = 200
    with mcl.RawListener(c, timeout=0.2) as l, mcl.RawBroadcaster(c) as b:
        for i in range(n):
            b.publish(b'%d' % i)
        got = [d['sequence'] for d in l]
        b.publish(b'last')  # a gap at the end is only known from a later message
        got += [d['sequence'] for d in l]
        assert got == sorted(set(got))  # duplicates were not delivered
        assert l.received == len(got)
        assert 0 < l.lost == n + 1 - len(got)
        assert l.duplicates > 0
        per = l.publishers[b.id]
        assert per['lost'] == l.lost and per['duplicates'] == l.duplicates
        assert l.stats['messages'] == len(got)


def test_pack_unpack_roundtrip():
    v = {'a': [1, -2, 2**64 - 1, 1.5, 'ü', b'\x00\xff', None, True, {'x': []}]}
    assert mcl.unpack(mcl.pack(v)) == v
    with pytest.raises(TypeError, match=r"payload\.a\[0\]"):
        mcl.pack({'a': [object()]})
    with pytest.raises(ValueError):
        mcl.unpack(b'\xc1')


EXIT_SCRIPT = textwrap.dedent('''
    import sys, threading, mcl
    c = mcl.Connection(sys.argv[1])
    got = threading.Event()
    ls = [mcl.RawListener(c) for _ in range(3)]
    for l in ls:
        l.subscribe(lambda d: got.set())
    closer = mcl.RawListener(c)
    closer.subscribe(lambda d: closer.close())
    idle = mcl.RawListener(c)           # never started
    b = mcl.RawBroadcaster(c)
    while not got.wait(0.01):
        b.publish(b'x')
    for _ in range(100):
        b.publish(b'y')                 # callbacks still running as the interpreter exits
    print('exiting')
''')


def test_interpreter_exit_with_listeners_open(url):
    r = subprocess.run([sys.executable, '-X', 'dev', '-c', EXIT_SCRIPT, url],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == 'exiting\n'
    assert r.stderr == ''
