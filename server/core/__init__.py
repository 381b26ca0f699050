"""Process-level pieces every layer may use: configuration, AMQP error types, logging helpers,
bounded regexes, flow-control constants. Imports nothing else of the server."""
