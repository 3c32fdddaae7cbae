# SPDX-License-Identifier: BSD-3-Clause
# Python MCL's documentation example (mcl.network.network, "Example usage"), unchanged: the
# mcl package keeps Python MCL's import paths (mcl.network.udp.Connection).
import os
import time
from mcl import RawListener
from mcl import RawBroadcaster
from mcl.network.udp import Connection

# Create raw listener and broadcaster from IPv6 connection.
URL = 'ff15::c75d:ce41:ea8e:a000'
connection = Connection(URL)
listener = RawListener(connection)
broadcaster = RawBroadcaster(connection)

# Print received data to screen.
listener.subscribe(lambda d: os.sys.stdout.write(d['payload']))

# Broadcast data.
broadcaster.publish('hello world')
time.sleep(0.1)

# Close connections.
listener.close()
broadcaster.close()
