"""Ledger adapters, and the one place that picks one for a profile."""

from __future__ import annotations

from refund_tui.config import Profile
from refund_tui.core.ledger import Ledger


def open_ledger(profile: Profile, *, create: bool = True) -> Ledger:
    """The profile's ledger: the team ledger on PostgreSQL when it names one, else an SQLite
    file (its ``ledger`` path, or its own file in the data directory) that must be the file
    first opened there (``ledger_registry``); ``create=False`` refuses to start a new one.
    Blocking."""
    if profile.ledger_url is not None:
        from refund_tui.ledgers.postgres import PostgresLedger

        return PostgresLedger(profile.ledger_url)
    from refund_tui.ledger_registry import open_profile_ledger

    return open_profile_ledger(profile.name, create=create, path=profile.ledger_path)
