"""Resilience tests: each attack runs while a canary client measures its round trip.

``canary``  a started Canary on the ``broker`` fixture's port; after the test body,
            the fixture checks the canary saw no connection errors.
"""

from __future__ import annotations

import pytest

from tests.resilience.canary import Canary


@pytest.fixture
def canary(broker):
    c = Canary(broker.port).start()
    c.wait_rounds(3)
    try:
        yield c
    finally:
        c.stop()
    assert not c.errors, f"canary lost its connection: {c.errors}"
