"""What every exchange type shares: identity, arguments and the binding set."""

from __future__ import annotations

from typing import Any


def args_key(arguments: dict | None) -> tuple:
    """A hashable, order-independent key for binding arguments."""
    if not arguments:
        return ()
    return tuple(sorted((k, _freeze(v)) for k, v in arguments.items()))


def _freeze(v: Any) -> Any:
    if isinstance(v, dict):
        return args_key(v)
    if isinstance(v, list):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, bytearray):  # a byte array ('x') value: unhashable as decoded
        return ("x", bytes(v))
    return v


class Binding:
    """source exchange -> destination (queue or exchange) with a key and arguments."""

    __slots__ = ("source", "destination", "routing_key", "arguments", "key", "json")

    def __init__(self, source: Exchange, destination: Any, routing_key: str, arguments: dict) -> None:
        self.source = source
        self.destination = destination
        self.routing_key = routing_key
        self.arguments = arguments or {}
        self.key = (id(destination), routing_key, args_key(arguments))
        #: this binding's entry in the definitions file, once encoded (bindings never change)
        self.json: str | None = None


class Exchange:
    """Base exchange. Subclasses keep their own routing index in ``index_add``/``index_remove``
    and answer ``match(routing_key, message)`` with a sequence of destinations."""

    type_name = ""

    def __init__(
        self,
        vhost: Any,
        name: str,
        durable: bool = False,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: dict | None = None,
    ) -> None:
        self.vhost = vhost
        self.name = name
        self.durable = durable
        self.auto_delete = auto_delete
        self.internal = internal
        self.arguments = dict(arguments or {})
        #: this object's entry in the definitions file, once encoded (declared objects never change)
        self.definition_json: str | None = None
        self.bindings: dict[tuple, Binding] = {}
        #: number of bindings whose destination is an exchange (route needs expansion)
        self.e2e_count = 0
        self.alternate: str | None = None
        ae = self.arguments.get("alternate-exchange")
        if isinstance(ae, (str, bytes)):
            self.alternate = ae.decode() if isinstance(ae, bytes) else ae
        self.policy: Any = None
        self.published_in = 0
        self.published_out = 0

    # -- lifecycle --------------------------------------------------------
    def delete(self) -> None:
        """The exchange is deleted: drop anything it holds (an x-delayed-message exchange's messages)."""

    def close(self) -> None:
        """Broker shutdown: flush anything it holds to disk."""

    # -- bindings ---------------------------------------------------------
    def bind(self, destination: Any, routing_key: str, arguments: dict | None) -> bool:
        b = Binding(self, destination, routing_key, arguments or {})
        if b.key in self.bindings:
            return False
        self.validate_binding(b)
        self.bindings[b.key] = b
        if isinstance(destination, Exchange):
            self.e2e_count += 1
        self.index_add(b)
        return True

    def unbind(self, destination: Any, routing_key: str, arguments: dict | None) -> Binding | None:
        key = (id(destination), routing_key, args_key(arguments))
        b = self.bindings.pop(key, None)
        if b is not None:
            if isinstance(destination, Exchange):
                self.e2e_count -= 1
            self.index_remove(b)
        return b

    def unbind_destination(self, destination: Any) -> list[Binding]:
        gone = [b for b in self.bindings.values() if b.destination is destination]
        for b in gone:
            self.unbind(b.destination, b.routing_key, b.arguments)
        return gone

    def validate_binding(self, binding: Binding) -> None:
        """Raise ChannelError for arguments this type refuses."""

    # -- subclass hooks ---------------------------------------------------
    def index_add(self, binding: Binding) -> None:
        raise NotImplementedError

    def index_remove(self, binding: Binding) -> None:
        raise NotImplementedError

    def match(self, routing_key: str, message: Any) -> Any:
        """Destinations for one routing key (a sequence; may contain duplicates across keys)."""
        raise NotImplementedError

    def describe_type(self) -> str:
        return self.type_name
