"""Ledger adapters, and the one place that picks one for a profile."""

from __future__ import annotations

from refund_tui.config import Profile, paths
from refund_tui.core.ledger import Ledger
from refund_tui.ledgers.sqlite import SqliteLedger


def open_ledger(profile: Profile) -> Ledger:
    """The profile's ledger: its own SQLite file in the data directory."""
    return SqliteLedger(paths().ledger_file(profile.name))
