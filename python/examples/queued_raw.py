# SPDX-License-Identifier: BSD-3-Clause
# Python MCL's documentation example (mcl.network.network.QueuedListener,
# "queuedlistener-raw"), unchanged.
import os
import time
from mcl import QueuedListener
from mcl import RawBroadcaster
from mcl.network.udp import Connection

# Define MCL connection.
URL = 'ff15::c75d:ce41:ea8e:00c0'
connection = Connection(URL)

# Print received data to screen.
listener = QueuedListener(connection)
broadcaster = RawBroadcaster(connection)
listener.subscribe(lambda d: os.sys.stdout.write(d['payload']))

# Broadcast data.
broadcaster.publish('hello world')
time.sleep(0.1)

# Close connections.
listener.close()
