"""Client addresses: what counts as loopback (``loopback_users`` may log in only from there)."""

from __future__ import annotations

from collections.abc import Collection


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (a peer's IP as text) is this machine's loopback."""
    if not host:
        return False
    return host.startswith("127.") or host in ("::1", "localhost") or host.startswith("::ffff:127.")


def loopback_refused(user: str, host: str | None, loopback_users: Collection[str]) -> bool:
    """Whether ``user`` may log in only from loopback and ``host`` is elsewhere."""
    return user in loopback_users and not is_loopback(host)
