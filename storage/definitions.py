"""The definitions file: vhosts, users, permissions, exchanges, queues, bindings, policies.

One JSON document, replaced atomically on every change: written to a temporary
file in the same directory, fsynced, renamed over the old one, and the
directory fsynced so that the rename itself survives a crash. A reader thus
sees either the old or the new document, never a mix.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


class DefinitionsError(Exception):
    """The definitions file exists but cannot be used (corrupt, not a JSON object)."""


def dumps(data: Any) -> str:
    """The file's JSON for ``data`` or any part of it (compact: the C encoder, fast for 10k+ objects)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


class DefinitionsFile:
    """Load and atomically save the broker's definitions as one JSON object."""

    __slots__ = ("path",)

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, Any]:
        """The saved definitions; ``{}`` if the file does not exist.

        Raises :class:`DefinitionsError` if it exists but is not a JSON object:
        starting with no definitions would silently drop every durable queue.
        """
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        try:
            doc = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DefinitionsError(f"{self.path}: corrupt definitions file: {exc}") from exc
        if not isinstance(doc, dict):
            raise DefinitionsError(
                f"{self.path}: corrupt definitions file: expected a JSON object, "
                f"got {type(doc).__name__}"
            )
        return doc

    @staticmethod
    def encode(data: dict[str, Any]) -> bytes:
        """The file's bytes for ``data``."""
        return dumps(data).encode()

    def save(self, data: dict[str, Any]) -> None:
        """Replace the file with ``data`` atomically and durably (blocking: write + 2 fsyncs)."""
        self.write(self.encode(data))

    def write(self, payload: bytes) -> None:
        """Replace the file with ``payload`` (from :meth:`encode`) atomically and durably.

        Blocking (write + 2 fsyncs); safe to run in a thread, one call at a time.
        """
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        # a unique temp name: two saves racing (threads) never share a file
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
        try:
            try:
                view = memoryview(payload)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
