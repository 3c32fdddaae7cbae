# SPDX-License-Identifier: BSD-3-Clause
# Python MCL's documentation example (mcl.network.network.QueuedListener,
# "queuedlistener-message"), unchanged.
import os
import time
from mcl import Message
from mcl import QueuedListener
from mcl import MessageBroadcaster
from mcl.network.udp import Connection

# Define MCL message.
class ExampleMessage(Message):
    mandatory = ('text',)
    connection = Connection('ff15::c75d:ce41:ea8e:00c0')

# Print received message to screen.
listener = QueuedListener(ExampleMessage)
broadcaster = MessageBroadcaster(ExampleMessage)
listener.subscribe(lambda d: os.sys.stdout.write(d['payload']['text']))

# Broadcast message.
broadcaster.publish(ExampleMessage(text='hello world'))
time.sleep(0.1)

# Close connections.
listener.close()
