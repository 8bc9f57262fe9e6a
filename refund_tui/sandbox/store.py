"""Where the world lives: in memory, or in a JSON file shared by several processes.

With a state file every session holds an exclusive ``flock`` on a sibling ``.lock`` file,
reloads the world when the file changed since this process last saw it, and saves it after
a change, so simulators embedded in several processes see one coherent world.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from pydantic import ValidationError

from refund_tui.sandbox.demo import seed_world
from refund_tui.sandbox.world import World

log = logging.getLogger(__name__)

_LOCK_POLL_SECONDS = 0.002


class WorldStore:
    """Hands out the world one session at a time (per process and, with a file, globally)."""

    def __init__(self, state_path: Path | None = None) -> None:
        self._path = state_path
        self._mutex = asyncio.Lock()
        self._world: World | None = None
        self._seen: tuple[int, int, int] | None = None
        self._saved_text: str | None = None
        if state_path is not None:
            state_path.parent.mkdir(parents=True, exist_ok=True)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[World]:
        """The world, exclusively; changes are saved when the block ends without error."""
        async with self._mutex, self._file_lock():
            world = self._current()
            try:
                yield world
            except BaseException:
                self._forget()
                raise
            self._save(world)

    async def reset(self) -> World:
        """Back to the seeded world, clock and faults included."""
        async with self._mutex, self._file_lock():
            self._world = seed_world()
            self._save(self._world)
            return self._world

    @asynccontextmanager
    async def _file_lock(self) -> AsyncIterator[None]:
        if self._path is None:
            yield
            return
        fd = os.open(self._path.with_name(self._path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await asyncio.sleep(_LOCK_POLL_SECONDS)
            yield
        finally:
            os.close(fd)

    def _current(self) -> World:
        if self._path is None:
            if self._world is None:
                self._world = seed_world()
            return self._world
        stamp = self._stamp()
        if self._world is None or stamp != self._seen:
            self._world = self._load() if stamp is not None else None
            if self._world is None:
                self._world = seed_world()
                self._save(self._world)
        return self._world

    def _load(self) -> World | None:
        assert self._path is not None
        try:
            text = self._path.read_text("utf-8")
            world = World.model_validate_json(text)
        except (ValidationError, UnicodeDecodeError):
            log.warning("sandbox state %s is unreadable; starting from the seeded world", self._path)
            return None
        self._saved_text = text
        self._seen = self._stamp()
        return world

    def _save(self, world: World) -> None:
        if self._path is None:
            return
        text = world.model_dump_json()
        if text == self._saved_text:
            return
        scratch = self._path.with_name(self._path.name + ".tmp")
        scratch.write_text(text, "utf-8")
        os.replace(scratch, self._path)
        self._saved_text = text
        self._seen = self._stamp()

    def _forget(self) -> None:
        """Drop a possibly half-changed world; the next session reloads the file."""
        if self._path is not None:
            self._world = None

    def _stamp(self) -> tuple[int, int, int] | None:
        assert self._path is not None
        try:
            st = self._path.stat()
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size
