"""A message as the broker holds it: raw content header and body, a few scanned fields."""

from __future__ import annotations

from pamqp import commands
from warren.protocol.hotpath import shortstr
from warren.protocol.methods import decode_header
from warren.protocol.properties import EMPTY, ScannedProperties, scan
from warren.protocol.table import get_headers, long, replace_headers, set_property

#: content header without a headers table -> (the same with x-delivery-count 0, scanned)
_WITH_COUNT: dict[bytes, tuple[bytes, ScannedProperties]] = {}


class Message:
    """One message in one queue (copies share the header and body bytes).

    ``header`` is the content header frame payload exactly as the publisher
    sent it; ``exrk`` is the publish's exchange + routing key as shortstrs,
    ready for Basic.Deliver. Properties are decoded only on demand.
    """

    __slots__ = (
        "exchange",
        "routing_key",
        "exrk",
        "header",
        "body",
        "size",
        "persistent",
        "priority",
        "props",
        "redelivered",
        "delivery_count",
        "expires_at",
        "_decoded",
    )

    def __init__(
        self,
        exchange: str,
        routing_key: str,
        exrk: bytes,
        header: bytes,
        body: bytes,
        props: ScannedProperties = EMPTY,
    ) -> None:
        self.exchange = exchange
        self.routing_key = routing_key
        self.exrk = exrk
        self.header = header
        self.body = body
        self.size = len(body)
        self.props = props
        self.persistent = props.delivery_mode == 2
        self.priority = props.priority
        self.redelivered = False
        self.delivery_count = 0
        self.expires_at = 0.0
        self._decoded: commands.Basic.Properties | None = None

    @classmethod
    def from_frames(
        cls, exchange: str, routing_key: str, exrk: bytes, header: bytes, body: bytes
    ) -> Message:
        return cls(exchange, routing_key, exrk, header, body, scan(header))

    def copy(self) -> Message:
        """A per-queue copy: shares bytes, has its own delivery state."""
        m = Message.__new__(Message)
        m.exchange = self.exchange
        m.routing_key = self.routing_key
        m.exrk = self.exrk
        m.header = self.header
        m.body = self.body
        m.size = self.size
        m.props = self.props
        m.persistent = self.persistent
        m.priority = self.priority
        m.redelivered = False
        m.delivery_count = 0
        m.expires_at = self.expires_at
        m._decoded = self._decoded
        return m

    @property
    def properties(self) -> commands.Basic.Properties:
        """Fully decoded properties (pamqp), cached."""
        if self._decoded is None:
            self._decoded = decode_header(self.header)
        return self._decoded

    @property
    def headers(self) -> dict:
        if not self.props.headers_len:
            return {}
        return self.properties.headers or {}

    def typed_headers(self) -> dict:
        """The headers table decoded with ``protocol.table``: a fresh dict whose values
        keep their wire types, for changing headers without changing anyone's types."""
        if not self.props.headers_len:
            return {}
        return get_headers(self.header)

    def replace_headers(self, headers: dict | None) -> None:
        """Splice a new headers table (typed values keep their types; None removes
        the property) into the raw content header; other property bytes are kept."""
        self._set_header(replace_headers(self.header, headers))

    def add_delivery_count(self) -> None:
        """Add ``x-delivery-count: 0`` to the headers (quorum queues put it on every
        delivery). Content headers without a headers table are spliced once per distinct
        header: a publisher's messages mostly share theirs."""
        if self.props.headers_len:
            headers = self.typed_headers()
            headers["x-delivery-count"] = long(0)
            self.replace_headers(headers)
            return
        done = _WITH_COUNT.get(self.header)
        if done is None:
            header = replace_headers(self.header, {"x-delivery-count": long(0)})
            done = (header, scan(header))
            if len(_WITH_COUNT) >= 1024:
                _WITH_COUNT.clear()
            _WITH_COUNT[self.header] = done
        self.header, props = done
        self.props = props  # shared: scanned properties are never changed in place
        self._decoded = None
        self.persistent = props.delivery_mode == 2
        self.priority = props.priority

    def set_property(self, name: str, value: object) -> None:
        """Set (or, with None, remove) one basic property in the raw content header,
        leaving the others' bytes as they are (names as pamqp's Basic.Properties)."""
        self._set_header(set_property(self.header, name, value))

    def _set_header(self, header: bytes) -> None:
        self.header = header
        self._decoded = None
        self.props = scan(header)
        self.persistent = self.props.delivery_mode == 2
        self.priority = self.props.priority

    def set_route(self, exchange: str, routing_key: str) -> None:
        """Change the exchange/routing key seen on delivery (dead-lettering)."""
        self.exchange = exchange
        self.routing_key = routing_key
        self.exrk = shortstr(exchange) + shortstr(routing_key)
