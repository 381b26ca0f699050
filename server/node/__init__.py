"""One warren node: the broker object that wires the model, the AMQP listeners and the
resource monitors together."""
