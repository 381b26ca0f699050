"""The live fuzzer's short form (tests/broker/fuzz_live.py has the long one): a few
thousand mutated frames, pre- and post-login, against a fresh broker; no crash, no
541, no traceback, and a clean client still gets through."""

from __future__ import annotations

import pytest

from tests.broker import fuzz_live


@pytest.mark.timeout(180)
@pytest.mark.parametrize("seed", [1, 2])
async def test_fuzz_short(broker, seed):
    def alive() -> bool:
        return broker.proc is not None and broker.proc.poll() is None

    stats, sane = await fuzz_live.run(broker.port, frames=3000, seed=seed, concurrency=8, alive=alive)
    assert alive(), "the broker died"
    assert stats.frames >= 3000
    assert stats.prelogin_connections and stats.postlogin_connections
    assert stats.internal_errors == 0, stats.codes
    assert sane, "a clean client could not get a message through afterwards"
    findings = fuzz_live.log_findings(broker.log_text())
    assert findings == {"tracebacks": 0, "internal_error_lines": 0}, findings
