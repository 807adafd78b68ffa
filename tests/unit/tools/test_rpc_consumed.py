"""tools/rpc_consumed.py: an RPC topic is ready when its queue is consumed."""

import collections
from unittest import mock

import testtools

from tools import rpc_consumed

Declared = collections.namedtuple('Declared', 'queue message_count '
                                  'consumer_count')


class NotFound(Exception):
    """The broker's answer to a passive declare of a missing queue."""


class FakeConnection(object):
    channel_errors = (NotFound,)

    def __init__(self, consumers):
        self.consumers = consumers      # {queue: consumers}; absent: none

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def channel(self):
        channel = mock.Mock()
        channel.queue_declare.side_effect = self._declare
        return channel

    def _declare(self, queue, passive):
        assert passive, 'a look must not declare the queue'
        if queue not in self.consumers:
            raise NotFound(queue)
        return Declared(queue, 0, self.consumers[queue])


class ConsumedTest(testtools.TestCase):

    def consumed(self, consumers, queues=('q-plugin', 'q-reports-plugin')):
        with mock.patch('kombu.Connection',
                        return_value=FakeConnection(consumers)) as conn:
            found = rpc_consumed.consumed('127.0.0.1', 5672, queues)
        conn.assert_called_once_with('amqp://guest:guest@127.0.0.1:5672//',
                                     connect_timeout=5)
        return found

    def test_every_queue_consumed(self):
        self.assertTrue(self.consumed({'q-plugin': 1,
                                       'q-reports-plugin': 2}))

    def test_a_queue_not_declared_yet(self):
        self.assertFalse(self.consumed({'q-plugin': 1}))

    def test_a_queue_without_consumer(self):
        self.assertFalse(self.consumed({'q-plugin': 1,
                                        'q-reports-plugin': 0}))
