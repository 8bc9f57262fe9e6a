"""Ledger adapters, and the one place that picks one for a profile."""

from __future__ import annotations

from refund_tui.config import Profile
from refund_tui.core.ledger import Ledger


def open_ledger(profile: Profile, *, create: bool = True, accept: bool = False) -> Ledger:
    """The profile's ledger: the team ledger on PostgreSQL when it names one, else an SQLite
    file (its ``ledger`` path, or its own file in the data directory); either must be the
    ledger this profile first used there (``ledger_registry``) unless ``accept``.
    ``create=False`` refuses to start a new SQLite file. Blocking."""
    from refund_tui.ledger_registry import open_profile_ledger, pin_identity

    if profile.ledger_url is None:
        return open_profile_ledger(profile.name, create=create, path=profile.ledger_path)
    from refund_tui.ledgers.postgres import PostgresLedger, identity_key

    ledger = PostgresLedger(profile.ledger_url)
    try:
        key = identity_key(profile.ledger_url, ledger.schema)
        pin_identity(profile.name, key, ledger.ledger_id, ledger.location, accept=accept)
    except BaseException:
        ledger.close()
        raise
    return ledger
