"""DefinitionsFile: atomic JSON replace, missing file, corrupt file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from warren.storage.definitions import DefinitionsError, DefinitionsFile

DOC = {
    "vhosts": [{"name": "/"}],
    "queues": [{"name": "q", "vhost": "/", "durable": True, "arguments": {"x-max-priority": 5}}],
    "bindings": [],
}


def test_missing_file_is_empty(tmp_path: Path) -> None:
    assert DefinitionsFile(tmp_path / "definitions.json").load() == {}


def test_save_then_load_round_trips(tmp_path: Path) -> None:
    f = DefinitionsFile(tmp_path / "sub" / "definitions.json")
    f.save(DOC)
    assert f.load() == DOC
    assert DefinitionsFile(str(f.path)).load() == DOC
    f.save({"vhosts": []})
    assert f.load() == {"vhosts": []}
    # no temp files left behind
    assert [p.name for p in f.path.parent.iterdir()] == ["definitions.json"]


@pytest.mark.parametrize(
    "content", [b"", b"{", b'{"a": 1', b"\xff\xfe garbage", b"[1, 2]", b"null", b"42"]
)
def test_corrupt_file_raises_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "definitions.json"
    path.write_bytes(content)
    with pytest.raises(DefinitionsError, match="corrupt definitions file") as info:
        DefinitionsFile(path).load()
    assert str(path) in str(info.value)


def test_failed_save_leaves_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = DefinitionsFile(tmp_path / "definitions.json")
    f.save(DOC)

    def boom(fd: int) -> None:
        raise OSError(5, "simulated fsync failure")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError):
        f.save({"other": True})
    monkeypatch.undo()
    assert f.load() == DOC
    assert [p.name for p in tmp_path.iterdir()] == ["definitions.json"]


def test_unserialisable_data_leaves_old_file(tmp_path: Path) -> None:
    f = DefinitionsFile(tmp_path / "definitions.json")
    f.save(DOC)
    with pytest.raises(TypeError):
        f.save({"bad": object()})
    assert f.load() == DOC


def test_saved_file_is_plain_json(tmp_path: Path) -> None:
    f = DefinitionsFile(tmp_path / "definitions.json")
    f.save(DOC)
    assert json.loads(f.path.read_text()) == DOC
