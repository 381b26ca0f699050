"""Drive headless Chromium over the Chrome DevTools protocol (aiohttp websocket, no extra package).

``Chromium`` starts ``/usr/bin/chromium`` with a fresh profile on a free debugging
port; ``Page`` clicks and types with real input events (``Input.dispatchMouseEvent``,
``Input.insertText``) at elements found by CSS selector, waits on conditions
evaluated in the page, and takes screenshots. Uncaught page errors are collected
in ``Page.errors`` so a test can assert there were none.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.brokerproc import free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars"]


def need_chromium() -> None:
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (CI is set, so this is a failure)")
        pytest.skip("chromium is not installed (apt-get install chromium)")


class Page:
    """One browser tab."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future] = {}
        self.errors: list[str] = []
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for m in self.ws:
            if m.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(m.data)
            fut = self.pending.pop(data.get("id", -1), None)
            if fut is not None and not fut.done():
                fut.set_result(data)
            elif data.get("method") == "Runtime.exceptionThrown":
                d = data["params"]["exceptionDetails"]
                self.errors.append(str((d.get("exception") or {}).get("description") or d.get("text")))

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        i = next(self.ids)
        fut = asyncio.get_running_loop().create_future()
        self.pending[i] = fut
        await self.ws.send_str(json.dumps({"id": i, "method": method, "params": params}))
        data = await asyncio.wait_for(fut, 30)
        if "error" in data:
            raise RuntimeError(f"{method}: {data['error']}")
        return data.get("result", {})

    async def eval(self, expr: str) -> Any:
        r = await self.send("Runtime.evaluate", expression=expr, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expr!r}: {r['exceptionDetails']}")
        return r["result"].get("value")

    async def wait(self, expr: str, timeout: float = 10.0) -> Any:
        """Wait until ``expr`` is truthy in the page; returns its value."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            try:
                v = await self.eval(expr)
            except RuntimeError as exc:  # the page is not there yet (navigating, element missing)
                v, last = None, exc
            # JS truthiness: an element comes back as {} and counts as found
            if v is not None and v is not False and v != "" and not (isinstance(v, (int, float)) and v == 0):
                return v
            if time.monotonic() > deadline:
                try:
                    seen = await self.eval("(document.querySelector('main') || document.body).innerText.slice(0, 1500)")
                except RuntimeError:
                    seen = "?"
                raise TimeoutError(f"page condition not met: {expr} (last error: {last}); page shows: {seen!r}")
            await asyncio.sleep(0.05)

    async def goto(self, url: str) -> None:
        await self.send("Page.navigate", url=url)

    async def click(self, selector: str) -> None:
        """Scroll ``selector`` into view and click its centre with the mouse."""
        sel = json.dumps(selector)
        box = await self.wait(
            f"(() => {{ const e = document.querySelector({sel}); if (!e) return null;"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return r.width ? {x: r.x + r.width / 2, y: r.y + r.height / 2} : null; })()"
        )
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            await self.send("Input.dispatchMouseEvent", type=kind, x=box["x"], y=box["y"], button="left",
                            clickCount=1)

    async def type(self, selector: str, text: str) -> None:
        """Click into a field, select what is there, and type ``text`` over it."""
        await self.click(selector)
        await self.eval(f"document.querySelector({json.dumps(selector)}).select && document.querySelector({json.dumps(selector)}).select()")
        await self.send("Input.insertText", text=text)

    async def select(self, selector: str, value: str) -> None:
        """Choose an option in a <select> (as the keyboard would), firing ``change``."""
        sel = json.dumps(selector)
        await self.eval(f"(() => {{ const e = document.querySelector({sel}); e.value = {json.dumps(value)};"
                        " e.dispatchEvent(new Event('change', {bubbles: true})); })()")

    async def text(self, selector: str) -> str:
        return await self.eval(f"(document.querySelector({json.dumps(selector)}) || {{}}).innerText || ''")

    async def screenshot(self, path: Path) -> Path:
        r = await self.send("Page.captureScreenshot", format="png", captureBeyondViewport=False)
        path.write_bytes(base64.b64decode(r["data"]))
        return path

    async def close(self) -> None:
        self.reader.cancel()
        await self.ws.close()


class Chromium:
    """A headless Chromium with its own empty profile; ``async with Chromium(dir) as b: page = await b.page()``."""

    def __init__(self, profile: Path, width: int = 1440, height: int = 900) -> None:
        self.profile = profile
        self.width = width
        self.height = height
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Chromium:
        need_chromium()
        self.profile.mkdir(parents=True, exist_ok=True)
        self.log = open(self.profile.parent / "chromium.log", "wb")  # noqa: SIM115 - closed in __aexit__
        self.proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={self.profile}", f"--remote-debugging-port={self.port}",
             f"--window-size={self.width},{self.height}", "about:blank"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        self.session = aiohttp.ClientSession()
        deadline = time.monotonic() + 30
        while True:
            try:
                async with self.session.get(f"http://127.0.0.1:{self.port}/json/version") as r:
                    if r.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("chromium did not start; see chromium.log")
            await asyncio.sleep(0.1)
        return self

    async def page(self) -> Page:
        assert self.session is not None
        async with self.session.put(f"http://127.0.0.1:{self.port}/json/new?about:blank") as r:
            target = await r.json()
        ws = await self.session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0)
        page = Page(ws)
        await page.send("Page.enable")
        await page.send("Runtime.enable")
        await page.send("Emulation.setDeviceMetricsOverride", width=self.width, height=self.height,
                        deviceScaleFactor=1, mobile=False)
        return page

    async def __aexit__(self, *exc: Any) -> None:
        if self.session is not None:
            await self.session.close()
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
