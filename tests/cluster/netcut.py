"""A TCP link that a test can cut: one node's way to etcd.

Each node of a test cluster reaches etcd through its own ``CuttableLink`` (a byte proxy
on a loopback port, run by the test's event loop). ``cut()`` drops every open connection
and refuses new ones, as a network partition between that node and etcd would;
``heal()`` lets connections through again. Nothing else on the machine is touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from warren.server.cluster.proxy import pump_both

from tests.brokerproc import free_port


class CuttableLink:
    """Runs in its own thread and event loop: the test's loop may block (starting a node)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.cut_off = False
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def endpoint(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def start(self) -> CuttableLink:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        return self

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    def cut(self) -> None:
        self._loop.call_soon_threadsafe(self._cut)

    def _cut(self) -> None:
        self.cut_off = True
        for task in list(self._pipes):
            task.cancel()

    def heal(self) -> None:
        self._loop.call_soon_threadsafe(setattr, self, "cut_off", False)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _close(self) -> None:
        self._cut()
        for task in list(self._pipes):
            with contextlib.suppress(BaseException):
                await task
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._pipes.add(task)
        up_writer = None
        try:
            if self.cut_off:
                return
            up_reader, up_writer = await asyncio.open_connection(*self.target)
            await pump_both(reader, writer, up_reader, up_writer)
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self._pipes.discard(task)
            writer.transport.abort()
            if up_writer is not None:
                up_writer.transport.abort()

