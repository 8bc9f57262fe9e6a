"""Which file each profile's ledger must be: identities recorded outside the ledger file.

Every ledger carries a random id written when it was created. The first time a profile's
ledger is opened its id is recorded in ``ledgers.json`` beside the config; from then on a
missing ledger file, or a file with another id, is refused with a clear message instead of
being silently recreated empty (which would hide every refund of unknown outcome from
``recover``). ``refund-tui ledger init --force`` starts afresh on purpose.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from refund_tui.config import paths
from refund_tui.core.ledger import Ledger, LedgerError

REGISTRY_NAME = "ledgers.json"
#: The files SQLite keeps for one ledger.
_SUFFIXES = ("", "-wal", "-shm")


class LedgerMissing(LedgerError):
    """The profile's ledger is not at its path, or another file is there."""


@contextmanager
def _registry() -> Iterator[dict[str, str]]:
    """The recorded identities, locked against other processes; changes are saved."""
    file = paths().config_dir / REGISTRY_NAME
    try:
        file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        handle = open(os.open(file, os.O_RDWR | os.O_CREAT, 0o600), "r+", encoding="utf-8")
    except OSError as error:
        raise LedgerMissing(f"cannot open {file}: {error.strerror}") from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            text = handle.read()
            known = json.loads(text) if text.strip() else {}
        except (ValueError, UnicodeError):
            known = None
        if not isinstance(known, dict) or not all(isinstance(v, str) for v in known.values()):
            raise LedgerMissing(f"{file} is not a refund-tui ledger registry: fix or remove it")
        before = dict(known)
        yield known
        if known != before:
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps(known, indent=2, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


def _key(path: Path) -> str:
    """The path as configured (absolute, symlinks kept): a repointed link is another ledger."""
    return os.path.abspath(path)


def open_profile_ledger(profile: str, *, create: bool = True) -> Ledger:
    """The profile's ledger, refused when it went missing or was replaced since it was
    first opened; with ``create=False`` a ledger never created raises LedgerMissing too."""
    path = paths().ledger_file(profile)
    afresh = f"`refund-tui ledger init --force --profile {profile}`"
    with _registry() as known:
        expected = known.get(_key(path))
        if not path.exists():
            if expected is not None:
                raise LedgerMissing(
                    f"the ledger {path} is missing (it held ledger {expected[:8]}): restore it "
                    f"from a backup with its -wal file, or start afresh on purpose with {afresh}"
                )
            if not create:
                raise LedgerMissing(f"no refunds recorded for profile '{profile}' yet ({path})")
        ledger = Ledger(path)
        if expected is None:
            known[_key(path)] = ledger.ledger_id
        elif ledger.ledger_id != expected:
            found = ledger.ledger_id
            ledger.close()
            raise LedgerMissing(
                f"the file at {path} is another ledger ({found[:8]}, expected {expected[:8]}): "
                f"it was replaced. Put the right file back, or start afresh on purpose with {afresh}"
            )
    return ledger


def start_afresh(profile: str) -> tuple[Ledger, list[Path]]:
    """A new empty ledger for the profile, after its ledger went missing or was replaced; a
    file at its path is set aside under a new name, never deleted or overwritten.

    Returns the ledger and where the old files went. Refuses an intact ledger.
    """
    path = paths().ledger_file(profile)
    stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{os.getpid()}"
    moved = []
    with _registry() as known:
        expected = known.get(_key(path))
        if path.exists() and expected is not None and _ledger_id(path) == expected:
            raise LedgerMissing(
                f"the ledger {path} is intact: --force only starts afresh after a ledger went "
                "missing or was replaced (move the file away yourself to retire it)"
            )
        try:
            for suffix in _SUFFIXES:
                old = path.with_name(path.name + suffix)
                aside = path.with_name(f"{path.name}.set-aside-{stamp}{suffix}")
                if old.exists():
                    os.link(old, aside)  # fails rather than overwrite
                    old.unlink()
                    moved.append(aside)
        except OSError as error:
            raise LedgerMissing(f"cannot set {path} aside: {error.strerror}") from None
        ledger = Ledger(path)
        known[_key(path)] = ledger.ledger_id
    return ledger, moved


def _ledger_id(path: Path) -> str | None:
    """The id of the ledger file at ``path``; None when it is not a readable ledger."""
    try:
        with Ledger(path) as ledger:
            return ledger.ledger_id
    except LedgerError:
        return None
