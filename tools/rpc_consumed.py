"""Exit 0 when each named queue of the cloud's broker has a consumer.

tools/cloud starts Neutron's agents once its RPC server consumes its
topics: RabbitMQ drops a call sent to a queue not declared yet, and the
agent waits 60 s for the reply, then about a minute more before trying
again (the DHCP agent was ready two minutes after its start).

    python tools/rpc_consumed.py HOST PORT QUEUE...
"""

import sys

import kombu


def consumed(host, port, queues):
    """Whether every queue exists and has a consumer (one look)."""
    url = 'amqp://guest:guest@%s:%d//' % (host, port)
    with kombu.Connection(url, connect_timeout=5) as connection:
        for queue in queues:
            channel = connection.channel()
            try:
                found = channel.queue_declare(queue, passive=True)
            except connection.channel_errors:
                return False        # not declared yet
            channel.close()
            if not found.consumer_count:
                return False
    return True


if __name__ == '__main__':
    host, port, *queues = sys.argv[1:]
    sys.exit(0 if consumed(host, int(port), queues) else 1)
