"""The AMQP session layer: connections, channels, TLS. Drives the broker model
(``warren.server.model``) and is the only layer that speaks frames to clients."""
