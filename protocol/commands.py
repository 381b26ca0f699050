"""pamqp's method classes without pamqp's argument checks: the broker's ``commands``.

pamqp checks names as it builds a method (``__init__`` calls ``validate()``) and
again as it encodes one: exchange names against ``[a-zA-Z0-9-_.:@#,/+ ]`` and 127
characters, queue names likewise. RabbitMQ accepts any UTF-8 short string (up to
255 bytes) as a name, and a broker must be able to echo back what it accepted
(Queue.DeclareOk, Basic.Return...): ``queue_declare("jobs!")`` must not end in
541 INTERNAL_ERROR. The wire format itself (a length octet) is the only limit.

Every class here is a subclass of pamqp's with ``validate()`` doing nothing, in the
same namespaces (``commands.Queue.DeclareOk``); ``INDEX_MAPPING`` maps method ids
to them, so decoded client methods are these classes too and ``isinstance`` checks
against this module hold for both directions.
"""

from __future__ import annotations

from typing import Any

from pamqp import commands as _pamqp
from pamqp.base import Frame

__all__ = ["INDEX_MAPPING", "Basic", "Channel", "Confirm", "Connection", "Exchange", "Queue", "Tx"]


def _no_checks(self: Any) -> None:
    """Names and reserved fields are not checked: the wire format is the limit."""


def _unchecked(cls: type) -> type:
    # no __slots__ of its own: pamqp iterates ``self.__slots__`` (the parent's) to encode
    return type(cls.__name__, (cls,), {"validate": _no_checks, "__doc__": cls.__doc__, "__module__": __name__})


INDEX_MAPPING: dict[int, type] = {}


def _mirror(name: str) -> type:
    source = getattr(_pamqp, name)
    attrs: dict[str, Any] = {"__doc__": source.__doc__, "__module__": __name__}
    for attr, value in vars(source).items():
        if isinstance(value, type) and issubclass(value, Frame):
            attrs[attr] = INDEX_MAPPING.setdefault(value.index, _unchecked(value))
        elif isinstance(value, type):
            attrs[attr] = value  # Basic.Properties
    return type(name, (), attrs)


Connection: Any = _mirror("Connection")
Channel: Any = _mirror("Channel")
Exchange: Any = _mirror("Exchange")
Queue: Any = _mirror("Queue")
Basic: Any = _mirror("Basic")
Confirm: Any = _mirror("Confirm")
Tx: Any = _mirror("Tx")
