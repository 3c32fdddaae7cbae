# SPDX-License-Identifier: BSD-3-Clause
"""mcl: publish/subscribe messaging on the mcl C core, in the shape of ACFR's Python MCL.

    import mcl
    conn = mcl.Connection('udp://239.255.26.1:26000?iface=lo&ttl=0')
    listener = mcl.RawListener(conn, topics='imu')
    listener.subscribe(lambda d: print(d['topic'], d['payload']))
    mcl.RawBroadcaster(conn, topic='imu').publish(b'hello')

Raw payloads are bytes on an mcl.Connection. On the Python MCL compatibility connection
(mcl.network.udp.Connection) they are any msgpack-serialisable object, as in Python MCL.
docs/python.md puts the API side by side with Python MCL's.
"""
import atexit as _atexit
import os as _os
import time as _time

from . import _mcl
from ._mcl import Connection, Error, pack, unpack

__all__ = ['Connection', 'Error', 'RawBroadcaster', 'RawListener', 'Message',
           'MessageBroadcaster', 'MessageListener', 'QueuedListener', 'pack', 'unpack',
           'version']

version = _mcl.version
_atexit.register(_mcl._shutdown)
# A forked child may close what it inherited (which leaves the parent's listeners alone).
_os.register_at_fork(after_in_child=_mcl._after_fork_child)


class _OpenFlag(int):
    """is_open: truthy like Python MCL's property, callable like a method (`x.is_open()`)."""

    def __call__(self):
        return bool(self)

    def __repr__(self):
        return repr(bool(self))


def _topics_arg(topics):
    # Python MCL: None, a str, or an iterable of str; '' and [] mean every topic.
    if topics is None:
        return None
    if isinstance(topics, str):
        return [topics] if topics else None
    try:
        items = list(topics)
    except TypeError:
        raise TypeError("The argument 'topics' must be None, a string or a list of "
                        "strings.") from None
    for t in items:
        if not isinstance(t, str):
            raise TypeError("The argument 'topics' must be None, a string or a list of "
                            "strings (not %r)." % (t,))
    return items or None


class _Closing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    @property
    def is_open(self):
        return _OpenFlag(self._is_open())


class RawBroadcaster(_Closing, _mcl._Broadcaster):
    """RawBroadcaster(connection, topic=None): publish(data, topic=None); close().

    data: bytes-like on an mcl.Connection (anything else is a TypeError, nothing is sent);
    any msgpack-serialisable object on mcl.network.udp.Connection (Python MCL payloads).
    Statistics: .stats (dict); .id is the publisher id listeners see.
    """

    def __init__(self, connection, topic=None):
        if not isinstance(connection, Connection):
            raise TypeError("The argument 'connection' must be an instance of a Connection().")
        super().__init__(connection, topic)


class RawListener(_Closing, _mcl._Listener):
    """RawListener(connection, topics=None, timeout=None).

    subscribe(callback): callback(dict) on the listener's thread, the dict having 'topic'
    (None when published without one), 'payload', 'time_received' (seconds since the epoch),
    'publisher' (id), 'sequence' and 'sender' ('ADDR:PORT'). A callback that raises is
    reported through sys.unraisablehook and counted in .callback_errors.
    Without callbacks: recv(timeout) or `for msg in listener` (stops after .timeout seconds
    without a message, or when closed).
    Statistics: .received, .lost, .duplicates, .reordered, .stats, .publishers.
    """

    def __init__(self, connection, topics=None, timeout=None):
        if not isinstance(connection, Connection):
            raise TypeError("The argument 'connection' must be an instance of a Connection().")
        self._topics_given = topics
        super().__init__(connection, _topics_arg(topics), timeout=timeout)

    @property
    def topics(self):
        """The topic filter as given (None, a str or a list)."""
        return self._topics_given

    def iter(self, timeout=None):
        """Messages until none comes for `timeout` seconds (None: until closed)."""
        while True:
            msg = self.recv(timeout)
            if msg is None:
                return
            yield msg


# --- messages --------------------------------------------------------------------------------

_RESERVED = ('name', 'timestamp')
_message_classes = {}


class _MessageMeta(type):
    def __new__(mcs, name, bases, namespace):
        cls = super().__new__(mcs, name, bases, namespace)
        if not any(isinstance(b, _MessageMeta) for b in bases):
            return cls  # Message itself
        if Message not in bases:
            return cls  # deeper subclasses are left alone (as in Python MCL)
        mandatory = namespace.get('mandatory')
        if not isinstance(mandatory, (list, tuple)) or \
                not all(isinstance(f, str) for f in mandatory):
            raise TypeError("'mandatory' must be a list or tuple of strings.")
        for f in mandatory:
            if f in ('mandatory', 'connection') or f in _RESERVED:
                raise ValueError("'%s' cannot be a field of a Message." % f)
        if len(set(mandatory)) != len(mandatory):
            raise ValueError("'mandatory' of %s has duplicate fields." % name)
        connection = namespace.get('connection')
        if not isinstance(connection, Connection):
            raise TypeError("'connection' must be a Connection() instance.")
        if name == 'Message':
            raise NameError("A Message() cannot be called 'Message'.")
        try:
            cls._type = _mcl.define_type(name, tuple(mandatory), connection.url,
                                         getattr(cls, 'topic', None))
        except Error as e:
            if e.name == 'MCL_EEXIST':
                raise NameError(str(e)) from None
            raise
        cls.mandatory = tuple(mandatory)
        cls._fields = frozenset(mandatory) | frozenset(_RESERVED)
        cls.name = name
        _message_classes[name] = cls  # mcl.log decodes recorded messages into it
        return cls


class Message(dict, metaclass=_MessageMeta):
    """A typed message: a dict with 'name', 'timestamp' and the `mandatory` fields.

        class Imu(mcl.Message):
            mandatory = ('ax', 'ay')
            connection = mcl.Connection('udp://239.255.26.2:26000?iface=lo&ttl=0')

    Imu() sets every mandatory field to None; Imu(ax=1.0, ay=2.0), Imu(mapping) and
    Imu(msgpack_bytes) fill them. A field the type does not declare is a TypeError; a
    publish of a message with a mandatory field still None is a ValueError.
    """

    mandatory = ()
    _fields = frozenset(_RESERVED)

    def __init__(self, *args, **kwargs):
        super().__init__()
        if len(args) > 1:
            raise TypeError('%s() takes at most one positional argument.' % type(self).__name__)
        dict.__setitem__(self, 'name', type(self).__name__)
        for f in self.mandatory:
            dict.__setitem__(self, f, None)
        dict.__setitem__(self, 'timestamp', _time.time())
        if args:
            src = args[0]
            if isinstance(src, (bytes, bytearray, memoryview)):
                src = unpack(src)
                if not isinstance(src, dict):
                    raise TypeError('Serialised object is of type %s and not a dictionary.'
                                    % type(src).__name__)
            self.update(src)
        if kwargs:
            self.update(kwargs)

    @classmethod
    def _from_fields(cls, fields):
        # A received message: taken as it came (other implementations may add fields).
        msg = dict.__new__(cls)
        dict.update(msg, fields)
        return msg

    def _check_key(self, key, value):
        if key not in self._fields:
            raise TypeError("%s has no field %r (fields: %s)" % (
                type(self).__name__, key, ', '.join(repr(f) for f in self.mandatory)))
        if key == 'name' and value != type(self).__name__:
            raise ValueError("field 'name' is read-only (%r)" % type(self).__name__)

    def __setitem__(self, key, value):
        self._check_key(key, value)
        dict.__setitem__(self, key, value)

    def update(self, *args, **kwargs):
        """As dict.update(); 'timestamp' becomes now unless the update sets it."""
        items = dict(*args, **kwargs)
        for k, v in items.items():
            self._check_key(k, v)
        dict.update(self, items)
        if 'timestamp' not in items:
            dict.__setitem__(self, 'timestamp', _time.time())

    def setdefault(self, key, default=None):
        if key not in self:
            self[key] = default
        return self[key]

    def encode(self):
        """The msgpack map (what goes on the wire)."""
        return pack(dict(self))

    def _check_publish(self):
        for k in self:
            if k not in self._fields:
                raise TypeError("%s has no field %r" % (type(self).__name__, k))
        missing = [f for f in self.mandatory if self.get(f) is None]
        if missing:
            raise ValueError("%s: mandatory field%s %s not set" % (
                type(self).__name__, 's' if len(missing) > 1 else '',
                ', '.join(repr(f) for f in missing)))


def _message_class(message):
    if not (isinstance(message, type) and issubclass(message, Message) and
            message is not Message and hasattr(message, '_type')):
        raise TypeError("'message' must reference a Message() sub-class.")
    return message


class MessageBroadcaster(RawBroadcaster):
    """MessageBroadcaster(message_class, topic=None): publish(msg, topic=None)."""

    def __init__(self, message, topic=None):
        self.message = _message_class(message)
        _mcl._Broadcaster.__init__(self, message.connection, topic, message._type)

    def publish(self, msg, topic=None):
        if not isinstance(msg, self.message):
            raise TypeError("Input 'msg' must reference a %s() instance." %
                            self.message.__name__)
        msg._check_publish()
        super().publish(msg, topic)


class MessageListener(RawListener):
    """MessageListener(message_class, topics=None, timeout=None): as RawListener, the
    payload being a message_class instance. Payloads that do not decode are counted in
    .undecodable and skipped."""

    def __init__(self, message, topics=None, timeout=None):
        self.message = _message_class(message)
        self._topics_given = topics
        _mcl._Listener.__init__(self, message.connection, _topics_arg(topics),
                                message._type, message._from_fields, timeout)


class QueuedListener(_Closing, _mcl._Queued):
    """QueuedListener(connection_or_message_type, topics=None, open_init=True, ring_size=0,
    receiver_cpus=None).

    As RawListener (given a Connection) or MessageListener (given a Message subclass), but
    messages are received by a separate process (mcl-recv) into a ring in shared memory
    (ring_size bytes, 0: 64 MiB), so slow callbacks do not make the kernel drop datagrams.
    receiver_cpus: the CPUs mcl-recv may run on ("2", "0,2-3"; None: anywhere). Callbacks run on the library's mcl-queued thread, each under the GIL. open() -> True
    (False if open); close() -> True (False if closed); re-openable; messages still queued at
    close are dropped. Statistics: .received, .lost, .ring_drops, .ring_oversize, .restarts,
    .stats (every counter of mcl_queued_stats).
    """

    def __init__(self, connection, topics=None, open_init=True, ring_size=0,
                 receiver_cpus=None):
        message = None
        if isinstance(connection, Connection):
            conn = connection
        elif isinstance(connection, type) and issubclass(connection, Message) and \
                hasattr(connection, '_type'):
            message, conn = connection, connection.connection
        else:
            raise TypeError("'connection' must reference a Connection() instance or a "
                            "Message() subclass.")
        if not isinstance(open_init, bool):
            raise TypeError("'open_init' must be a bool.")
        self.message = message
        self._topics_given = topics
        _mcl._Queued.__init__(self, conn, _topics_arg(topics),
                              None if message is None else message._type,
                              None if message is None else message._from_fields,
                              open_init, ring_size, receiver_cpus)

    @property
    def topics(self):
        """The topic filter as given (None, a str or a list)."""
        return self._topics_given
