# SPDX-License-Identifier: BSD-3-Clause
# Python MCL's documentation example (mcl.network.network, "send-receive"), unchanged: the
# mcl package keeps Python MCL's import paths (mcl.network.udp.Connection).
import os
import time
from mcl import Message
from mcl import MessageListener
from mcl import MessageBroadcaster
from mcl.network.udp import Connection

# Define MCL message.
class ExampleMessage(Message):
    mandatory = ('text',)
    connection = Connection('ff15::c75d:ce41:ea8e:b000')

# Create raw listener and broadcaster from IPv6 connection.
listener = MessageListener(ExampleMessage)
broadcaster = MessageBroadcaster(ExampleMessage)

# Print received message to screen.
listener.subscribe(lambda d: os.sys.stdout.write(d['payload']['text']))

# Broadcast message.
broadcaster.publish(ExampleMessage(text='hello world'))
time.sleep(0.1)

# Close connections.
listener.close()
broadcaster.close()
