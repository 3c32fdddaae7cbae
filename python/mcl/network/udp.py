# SPDX-License-Identifier: BSD-3-Clause
"""Python MCL's UDP connection on the mcl C core.

    from mcl.network.udp import Connection
    connection = Connection('ff15::c75d:ce41:ea8e:000a')      # port 26000, as Python MCL

`url` is a multicast address (IPv6 or IPv4) as in Python MCL, or a full mcl URL. Raw payloads
on this connection are any msgpack-serialisable object (Python MCL's raw payloads), not only
bytes, and listeners' time_received is a naive UTC datetime.datetime (Python MCL's
QueuedListener added one; mcl.Connection gives seconds since the epoch). $MCL_COMPAT_OPTIONS (e.g. 'iface=eth0&ttl=3') is added to the URL of a bare address:
Python MCL let the routing table pick the interface and used 3 hops.
"""
import os

from .. import Connection as _Connection

UDP_PORT = 26000
ALLOWED_MULTICAST_HOPS = 3


class Connection(_Connection):
    objects = True  # raw payloads are msgpack-encoded Python objects
    datetimes = True  # time_received is a naive UTC datetime, as Python MCL's QueuedListener

    def __init__(self, url, port=UDP_PORT):
        if not isinstance(url, str):
            raise TypeError("'url' must be a string.")
        if isinstance(port, bool) or not isinstance(port, int):
            raise TypeError('Port must be an integer value.')
        if port < 1024 or port > 65535:
            raise TypeError('The port must be a positive integer between 1024 and 65535.')
        self.address = url
        if '://' in url:
            full = url
        else:
            host = '[%s]' % url if ':' in url else url
            opts = os.environ.get('MCL_COMPAT_OPTIONS', 'ttl=%d' % ALLOWED_MULTICAST_HOPS)
            full = 'udp://%s:%d' % (host, port) + ('?' + opts if opts else '')
        super().__init__(full)
        self._port = port

    def to_dict(self):
        return {'url': self.address, 'port': self._port}

    def __repr__(self):
        return 'Connection(url=%r, port=%r)' % (self.address, self._port)
