"""Wiring between the broker and ``storage``: message codec, per-queue stores,
the durable definitions file, and start-up recovery.

Durable queues keep their messages in log stores under
``<data_dir>/queues/<id>/`` (one lane per priority level); persistent messages
there are fsynced before they are confirmed and survive restarts, transient
ones are written but skipped on recovery. Non-durable queues keep messages in
RAM and spill to a log under ``<data_dir>/transient/`` when they grow;
that directory is wiped at start.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import logging
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from warren.server.model.message_codec import decode_message, decode_requeued, encode_message
from warren.storage.base import MessageStore
from warren.storage.definitions import DefinitionsFile
from warren.storage.factory import open_store
from warren.storage.log import default_executor

if TYPE_CHECKING:
    from warren.server.model.node import Node
    from warren.server.model.vhost import VHost

log = logging.getLogger("warren.persistence")

def queue_id(vhost: str, name: str) -> str:
    return hashlib.sha1(f"{vhost}\x00{name}".encode()).hexdigest()[:20]


class Persistence:
    """Stores for queues and the definitions file of one broker."""

    def __init__(self, broker: Node, data_dir: str) -> None:
        self.broker = broker
        self.root = Path(data_dir)
        self.queues_dir = self.root / "queues"
        self.transient_dir = self.root / "transient"
        self.definitions = DefinitionsFile(self.root / "definitions.json")
        # Definition changes are counted; a save covers the changes made before it
        # exported. One save runs at a time (its write and fsyncs in a thread), and
        # changes made meanwhile are covered by the next, so declaring 10k queues one
        # by one costs a few saves, not 10k rewrites of a growing file.
        self._changes = 0
        self._saved = 0
        self._save_scheduled = False
        self._saving: concurrent.futures.Future[None] | None = None
        self._waiters: list[tuple[int, Callable[[bool], None]]] = []
        self._retry: asyncio.TimerHandle | None = None
        self._save_failing = False
        self._transient_seq = 0
        #: cluster mode: after each local save, also store the document elsewhere (etcd);
        #: the save (and the confirms waiting for it) completes when both are done
        self.mirror: Callable[[bytes], Awaitable[None]] | None = None
        self._local: concurrent.futures.Future[None] | None = None

    def prepare(self) -> dict[str, Any]:
        """Wipe transient data, read the durable definitions (empty on first start)."""
        self.prepare_dirs()
        return self.definitions.load()

    def prepare_dirs(self) -> None:
        """Wipe transient data; make the directories stores live in."""
        shutil.rmtree(self.transient_dir, ignore_errors=True)
        self.queues_dir.mkdir(parents=True, exist_ok=True)
        self.transient_dir.mkdir(parents=True, exist_ok=True)

    def store_for(self, vhost: VHost, name: str, durable: bool, max_priority: int) -> MessageStore:
        """The message store of a queue (one lane per priority level)."""
        lanes = max_priority + 1 if max_priority else 1
        if durable:
            directory = self.queues_dir / queue_id(vhost.name, name)
        else:
            # a fresh directory per declaration: a redeclared queue never sees old spill files
            self._transient_seq += 1
            directory = self.transient_dir / f"{queue_id(vhost.name, name)}-{self._transient_seq}"
        return open_store(
            directory,
            durable=durable,
            lanes=lanes,
            spill=not durable,
            encode=encode_message,
            decode=decode_message,
            decode_requeued=decode_requeued,
        )

    def remove_orphans(self) -> None:
        """Delete message directories of queues that no longer exist (e.g. exclusive ones after a crash)."""
        live = {queue_id(vh.name, q.name) for vh in self.broker.vhosts.values() for q in vh.queues.values()}
        for d in self.queues_dir.iterdir():
            if d.name not in live:
                log.info("removing messages of a queue that no longer exists dir=%s", d)
                shutil.rmtree(d, ignore_errors=True)
        delayed = self.root / "delayed"
        if delayed.is_dir():
            held = {queue_id(vh.name, ex.name) for vh in self.broker.vhosts.values()
                    for ex in vh.exchanges.values() if ex.durable and ex.type_name == "x-delayed-message"}
            for d in delayed.iterdir():
                if d.name not in held:
                    log.info("removing delayed messages of an exchange that no longer exists dir=%s", d)
                    shutil.rmtree(d, ignore_errors=True)

    def delayed_dir(self, vhost: str, name: str, durable: bool) -> Path:
        """Where an x-delayed-message exchange keeps its held messages (transient: wiped at start)."""
        if durable:
            return self.root / "delayed" / queue_id(vhost, name)
        return self.transient_dir / f"delayed-{queue_id(vhost, name)}"

    def delayed_store(
        self,
        vhost: str,
        name: str,
        durable: bool,
        encode: Callable[[Any], bytes],
        decode: Callable[[bytes], Any],
        **options: Any,
    ) -> MessageStore:
        """The store of an x-delayed-message exchange's held messages (one lane)."""
        return open_store(
            self.delayed_dir(vhost, name, durable), durable=durable, encode=encode, decode=decode, **options
        )

    def remove_queue_dir(self, vhost: str, name: str) -> None:
        shutil.rmtree(self.queues_dir / queue_id(vhost, name), ignore_errors=True)

    # -- definitions --------------------------------------------------------
    def schedule_save(self) -> None:
        """A durable definition changed: save (in the background) soon."""
        self._changes += 1
        if self._save_scheduled or self._saving is not None:
            return  # the save in flight starts the next one when it is done
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.save_now()
            return
        self._save_scheduled = True
        # at the end of this loop turn: every change the turn makes joins one save
        loop.call_soon(self._start_save)

    @property
    def changes(self) -> int:
        """Definition changes made so far (a counter: did an operation change one?)."""
        return self._changes

    @property
    def unsaved(self) -> bool:
        """Some definition change is not on disk yet."""
        return self._saved < self._changes

    def sync(self, callback: Callable[[bool], None]) -> None:
        """Call ``callback(ok)`` once every definition change made so far is on disk.

        Publisher confirms wait for this too: a confirmed message must never sit
        in a queue whose definition a crash would lose (recovery removes the
        message directories of queues it does not know).
        """
        loop = asyncio.get_running_loop()
        if not self.unsaved:
            loop.call_soon(callback, True)
            return
        # unsaved changes always have a save scheduled, in flight or retrying
        self._waiters.append((self._changes, callback))

    async def saved(self) -> bool:
        """``sync`` awaited: True once every change made so far is saved, False if the
        save failed."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        def answer(ok: bool) -> None:
            if not done.done():
                done.set_result(ok)

        self.sync(answer)
        return await done

    def _start_save(self) -> None:
        from warren.server.model.definitions import durable_definitions_payload

        self._save_scheduled = False
        if self._saving is not None or not self.unsaved:
            return
        upto = self._changes
        try:
            payload = durable_definitions_payload(self.broker)
            fut = default_executor().submit(self.definitions.write, payload)
        except (OSError, RuntimeError) as exc:
            fut = concurrent.futures.Future()
            fut.set_exception(exc)
        self._saving = fut
        loop = asyncio.get_running_loop()

        self._local = fut
        mirror = self.mirror
        if mirror is not None:
            fut = self._saving = self._then_mirror(fut, mirror, payload)

        def done(f: concurrent.futures.Future[None]) -> None:
            try:
                loop.call_soon_threadsafe(self._save_done, f, upto)
            except RuntimeError:
                pass  # loop closed: save_now at stop writes everything

        fut.add_done_callback(done)

    @staticmethod
    def _then_mirror(
        local: concurrent.futures.Future[None],
        mirror: Callable[[bytes], Awaitable[None]],
        payload: bytes,
    ) -> concurrent.futures.Future[None]:
        """A future done when the local write and then the mirror are done."""
        both: concurrent.futures.Future[None] = concurrent.futures.Future()

        async def run() -> None:
            try:
                await asyncio.wrap_future(local)
                await mirror(payload)
            except BaseException as exc:  # reported to the save's waiters
                both.set_exception(exc)
            else:
                both.set_result(None)

        asyncio.ensure_future(run())
        return both

    def _save_done(self, fut: concurrent.futures.Future[None], upto: int) -> None:
        if self._saving is not fut:
            return  # save_now already waited for it and wrote a newer document
        self._saving = None
        exc = fut.exception()
        if exc is None:
            if self._save_failing:
                self._save_failing = False
                log.warning("definitions saved again")
            self._saved = max(self._saved, upto)
            self._answer(upto, True)
            if self.unsaved:
                self._start_save()
            return
        # a full or failing disk fails every retry: say so once, not every second
        (log.debug if self._save_failing else log.error)("could not save definitions: %s", exc)
        self._save_failing = True
        # the publishes waiting for it are nacked; try again in a second
        self._answer(upto, False)
        if self._retry is None:

            def retry() -> None:
                self._retry = None
                if self.unsaved and self._saving is None:
                    self._start_save()

            self._retry = asyncio.get_running_loop().call_later(1.0, retry)

    def _answer(self, upto: int, ok: bool) -> None:
        waiters = self._waiters
        if not waiters:
            return
        self._waiters = [(n, cb) for n, cb in waiters if n > upto]
        for n, cb in waiters:
            if n <= upto:
                try:
                    cb(ok)
                except Exception:  # a callback's bug must not stop the others
                    log.exception("definitions sync callback failed")

    def save_now(self) -> None:
        """Save synchronously (start, stop): waits for a save in flight, then writes."""
        from warren.server.model.definitions import durable_definitions_payload

        self._save_scheduled = False
        if self._saving is not None:
            # only the local write: a mirror runs on this (blocked) loop
            if self._local is not None:
                concurrent.futures.wait([self._local])
            self._saving = None
        upto = self._changes
        try:
            self.definitions.write(durable_definitions_payload(self.broker))
        except OSError as exc:
            log.error("could not save definitions: %s", exc)
            self._answer(upto, False)
            return
        self._saved = upto
        self._answer(upto, True)
