"""The dashboard in headless Chromium: the page loads, shows a queue a test created,
and its numbers match the management API. Skipped without /usr/bin/chromium unless CI is set."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import aio_pika
import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _need_chromium() -> None:
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (CI is set, so this is a failure)")
        pytest.skip("chromium is not installed (apt-get install chromium)")


async def test_static_files_served(broker, http):
    async with http.s.get(http.base + "/") as r:
        assert r.status == 200 and "warren" in await r.text()
    async with http.s.get(http.base + "/static/app.js") as r:
        assert r.status == 200


async def test_dashboard_shows_queue(broker, http, tmp_path):
    _need_chromium()
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel()
        await ch.declare_queue("dash-q", arguments={"x-max-priority": 1})
        for p in (0, 1, 1):
            await ch.default_exchange.publish(aio_pika.Message(b"d", priority=p), "dash-q")
        api_q = await http.get("/api/queues/%2F/dash-q")
        url = f"{http.base}/#user=guest&password=guest"
        r = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             f"--user-data-dir={tmp_path / 'chromium'}", "--virtual-time-budget=5000", "--dump-dom", url],
            capture_output=True, text=True, timeout=14,
        )
        dom = r.stdout
        assert 'data-loaded="1"' in dom, r.stderr[-2000:]
        m = re.search(r'<tr data-queue="/ dash-q"([^>]*)>(.*?)</tr>', dom, re.S)
        assert m, dom[-3000:]
        attrs = dict(re.findall(r'data-([a-z]+)="([^"]*)"', m.group(1)))
        assert int(attrs["ready"]) == api_q["messages_ready"] == 3
        assert int(attrs["unacked"]) == api_q["messages_unacknowledged"] == 0
        assert int(attrs["consumers"]) == api_q["consumers"]
        assert "1 / 2" in m.group(2)  # lane depths
        assert 'data-total="queues" data-value="1"' in dom
