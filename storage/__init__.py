"""warren storage: message stores (lanes of records with per-record ack) and definitions.

Knows bytes and positions, not AMQP semantics. The broker (``server``) talks to a
queue's messages only through :class:`storage.base.MessageStore`; every store is
made by :func:`storage.factory.open_store`.
"""
