"""AMQP 0-9-1 on the wire: pure functions and state, bytes in, frames out. No I/O."""
