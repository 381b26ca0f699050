"""The broker model: vhosts, exchanges, queues, bindings, policies, dead-lettering,
delays, users and definitions. Knows nothing of connections: it learns about
deliveries through the small protocols in ``warren.server.model.delivery``."""
