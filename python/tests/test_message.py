# SPDX-License-Identifier: BSD-3-Clause
# Typed messages: Python MCL's Message declaration, MessageBroadcaster/MessageListener over
# the C message API, and bad input refused (naming the field) before anything is sent.
import itertools

import pytest

import mcl
from conftest import udp_url

_names = itertools.count()


def message_type(*fields):
    """A fresh Message subclass (names and connections are unique in the registry)."""
    name = 'PyTestMsg%d' % next(_names)
    return type(name, (mcl.Message,), {'mandatory': fields,
                                       'connection': mcl.Connection(udp_url())})


def test_roundtrip_values():
    M = message_type('a', 'b', 'c')
    values = {'a': [1, -2, 2**64 - 1, 2.5, True, None], 'b': {'x': 'ü', 'y': b'\x00\x01'},
              'c': 'text'}
    with mcl.MessageListener(M, timeout=5) as l, mcl.MessageBroadcaster(M) as b:
        sent = M(**values)
        b.publish(sent, topic='t')
        d = l.recv(5)
    assert d is not None and d['topic'] == 't'
    got = d['payload']
    assert isinstance(got, M) and got.name == M.__name__
    assert dict(got) == dict(sent)
    assert set(d) == {'topic', 'payload', 'time_received', 'publisher', 'sequence', 'sender'}
    assert l.received == 1


def test_message_defaults_and_update():
    M = message_type('x', 'y')
    m = M()
    assert m['name'] == M.__name__ and m['x'] is None and m['y'] is None
    t0 = m['timestamp']
    m.update(x=1)
    assert m['x'] == 1 and m['timestamp'] >= t0
    m.update(timestamp=5.0)
    assert m['timestamp'] == 5.0
    assert M(m.encode()) == m
    assert M({'x': 3, 'y': 4})['y'] == 4


def test_missing_mandatory_field_sends_nothing():
    M = message_type('speed', 'heading')
    with mcl.MessageListener(M, timeout=0.3) as l, mcl.MessageBroadcaster(M) as b:
        with pytest.raises(ValueError, match="'heading'"):
            b.publish(M(speed=1.0))
        m = M(speed=1.0, heading=2.0)
        del m['heading']
        with pytest.raises(ValueError, match="'heading'"):
            b.publish(m)
        assert b.stats['messages'] == 0
        assert list(l) == []


def test_unknown_field_raises_naming_it():
    M = message_type('speed')
    with pytest.raises(TypeError, match="'sped'"):
        M(sped=1)
    m = M(speed=1)
    with pytest.raises(TypeError, match="'sped'"):
        m['sped'] = 2
    with pytest.raises(TypeError, match="'sped'"):
        m.update({'sped': 2})
    dict.__setitem__(m, 'sped', 2)  # around the checks: publish still refuses it
    with mcl.MessageBroadcaster(M) as b:
        with pytest.raises(TypeError, match="'sped'"):
            b.publish(m)
        assert b.stats['messages'] == 0


def test_wrong_value_type_names_field_path():
    M = message_type('pose')
    with mcl.MessageBroadcaster(M) as b:
        with pytest.raises(TypeError, match=r"'pose\.q\[1\]'.*set"):
            b.publish(M(pose={'q': [1.0, {1, 2}]}))
        with pytest.raises(TypeError, match=r"'pose\.1'|keys must be str"):
            b.publish(M(pose={1: 'x'}))
        with pytest.raises(ValueError, match="'pose'"):
            b.publish(M(pose=2**64))
        assert b.stats['messages'] == 0


def test_name_is_read_only():
    M = message_type('a')
    m = M(a=1)
    with pytest.raises(ValueError, match='name'):
        m['name'] = 'Other'
    m['name'] = M.__name__  # the same name is fine


def test_wrong_message_instance_and_class():
    M = message_type('a')
    N = message_type('a')
    with mcl.MessageBroadcaster(M) as b:
        with pytest.raises(TypeError, match=M.__name__):
            b.publish(N(a=1))
        with pytest.raises(TypeError):
            b.publish({'a': 1})
    for bad in (None, 0, dict, M(a=1), mcl.Message):
        with pytest.raises(TypeError, match='Message'):
            mcl.MessageBroadcaster(bad)
        with pytest.raises(TypeError, match='Message'):
            mcl.MessageListener(bad)


def test_definition_errors():
    c = mcl.Connection(udp_url())
    with pytest.raises(TypeError, match='mandatory'):
        type('PyBad1', (mcl.Message,), {'mandatory': 'a', 'connection': c})
    with pytest.raises(TypeError, match='mandatory'):
        type('PyBad2', (mcl.Message,), {'connection': c})
    with pytest.raises(TypeError, match='connection'):
        type('PyBad3', (mcl.Message,), {'mandatory': ('a',)})
    with pytest.raises(ValueError, match='timestamp'):
        type('PyBad4', (mcl.Message,), {'mandatory': ('timestamp',), 'connection': c})
    with pytest.raises(ValueError, match='duplicate'):
        type('PyBad5', (mcl.Message,), {'mandatory': ('a', 'a'), 'connection': c})
    M = message_type('a')
    with pytest.raises(NameError):
        type(M.__name__, (mcl.Message,), {'mandatory': ('a',),
                                          'connection': mcl.Connection(udp_url())})
    with pytest.raises(NameError):  # the same connection as M
        type('PyBad6', (mcl.Message,), {'mandatory': ('a',), 'connection': M.connection})


def test_undecodable_payloads_counted_and_skipped():
    M = message_type('a')
    with mcl.MessageListener(M, timeout=5) as l, mcl.RawBroadcaster(M.connection) as raw, \
            mcl.MessageBroadcaster(M) as b:
        raw.publish(b'\xc1 not msgpack')
        raw.publish(mcl.pack([1, 2]))            # msgpack, not a map
        raw.publish(mcl.pack({'name': 'x'}))     # a map without the mandatory field
        b.publish(M(a=7))
        d = l.recv(5)
        assert d is not None and d['payload']['a'] == 7
        assert l.undecodable == 3
        assert l.is_open


def test_message_callbacks_and_iteration():
    M = message_type('i')
    with mcl.MessageListener(M, timeout=0.3) as it, mcl.MessageBroadcaster(M) as b:
        for i in range(3):
            b.publish(M(i=i))
        assert [d['payload']['i'] for d in it] == [0, 1, 2]


def test_message_close_from_callback():
    M = message_type('i')
    seen = []
    with mcl.MessageBroadcaster(M) as b:
        l = mcl.MessageListener(M)

        def cb(d):
            seen.append(d['payload']['i'])
            l.close()
        l.subscribe(cb)
        import time
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            b.publish(M(i=len(seen)))
            time.sleep(0.01)
        assert seen and not l.is_open
        b.publish(M(i=99))
    assert 99 not in seen
