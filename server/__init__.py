"""warren broker: listener, connections, channels, vhosts, exchanges, queues."""
