"""Every store kind implements :class:`storage.base.MessageStore`, and the factory makes each."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from logstore_helpers import Rec, dec, enc
from warren.storage.base import MessageStore
from warren.storage.factory import open_store
from warren.storage.lanes import LanedStore
from warren.storage.log import LanedLogStore, LogStore
from warren.storage.memory import MemoryStore
from warren.storage.spill import SpillStore

STORE_CLASSES = [MemoryStore, SpillStore, LanedStore, LanedLogStore, LogStore]

#: the protocol's members (methods and properties), read from the protocol itself
MEMBERS = sorted(
    name
    for name, value in vars(MessageStore).items()
    if (callable(value) or isinstance(value, property))
    and (not name.startswith("_") or name in ("__len__", "__bool__"))
)


def _codec() -> dict:
    return {"encode": enc, "decode": dec}


def test_the_protocol_lists_what_the_broker_uses() -> None:
    for name in ("push", "shift", "ack", "requeue", "sync", "holds_recovered", "ready_bytes"):
        assert name in MEMBERS


@pytest.mark.parametrize("cls", STORE_CLASSES, ids=lambda c: c.__name__)
def test_each_store_class_has_every_member_with_its_signature(cls: type) -> None:
    for name in MEMBERS:
        want = vars(MessageStore)[name]
        have = getattr(cls, name, None)
        assert have is not None, f"{cls.__name__} lacks {name}"
        if isinstance(want, property):
            assert isinstance(have, property), f"{cls.__name__}.{name} is not a property"
            continue
        want_params = list(inspect.signature(want).parameters)
        have_params = list(inspect.signature(have).parameters)
        assert have_params == want_params, f"{cls.__name__}.{name}{have_params} != {want_params}"


@pytest.mark.parametrize(
    ("kwargs", "kind"),
    [
        ({"durable": False}, MemoryStore),
        ({"durable": False, "lanes": 3}, LanedStore),
        ({"durable": True, "on_disk": True}, LogStore),
        ({"durable": True, "on_disk": True, "lanes": 2}, LanedLogStore),
        ({"durable": False, "on_disk": True, "spill": True}, SpillStore),
        ({"durable": False, "on_disk": True, "spill": True, "lanes": 2}, LanedStore),
        ({"durable": False, "on_disk": True}, LogStore),
    ],
)
def test_the_factory_makes_each_kind_and_each_is_a_message_store(
    tmp_path: Path, kwargs: dict, kind: type
) -> None:
    kwargs = dict(kwargs)
    directory = tmp_path / "q" if kwargs.pop("on_disk", False) else None
    store = open_store(directory, **kwargs, **_codec())
    try:
        assert type(store) is kind
        assert isinstance(store, MessageStore)
        pos = store.push(Rec(3, True, b"abc"))
        assert len(store) == 1 and store.ready_bytes == 3
        got = store.shift()
        assert got is not None and got[0] == pos and got[1].payload == b"abc"
        store.ack(pos)
        store.flush_acks()
        assert not store and not store.holds_recovered()
    finally:
        store.delete()


def test_a_reopened_durable_store_holds_recovered_records(tmp_path: Path) -> None:
    for lanes in (1, 2):
        directory = tmp_path / f"lanes-{lanes}"
        store = open_store(directory, durable=True, lanes=lanes, **_codec())
        pos = store.push(Rec(1, True, b"x"))
        store.close()
        store = open_store(directory, durable=True, lanes=lanes, **_codec())
        assert store.holds_recovered() and store.is_recovered(pos)
        store.delete()


def test_the_factory_refuses_contradictions(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        open_store(None, durable=True)
    with pytest.raises(ValueError):
        open_store(tmp_path, durable=True, spill=True, **_codec())
    with pytest.raises(ValueError):
        open_store(tmp_path, durable=False)  # on disk without a codec
    with pytest.raises(ValueError):
        open_store(None, durable=False, lanes=0)
