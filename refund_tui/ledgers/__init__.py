"""Ledger adapters, and the one place that picks one for a profile."""

from __future__ import annotations

from refund_tui.config import Profile, paths
from refund_tui.core.ledger import Ledger


def open_ledger(profile: Profile) -> Ledger:
    """The profile's ledger: the team ledger on PostgreSQL when it names one, else an SQLite
    file (its ``ledger`` path, or its own file in the data directory). Blocking."""
    if profile.ledger_url is not None:
        from refund_tui.ledgers.postgres import PostgresLedger

        return PostgresLedger(profile.ledger_url)
    from refund_tui.ledgers.sqlite import SqliteLedger

    return SqliteLedger(profile.ledger_path or paths().ledger_file(profile.name))
