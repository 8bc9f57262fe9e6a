"""Ledger adapters, and the one place that picks one for a profile."""

from __future__ import annotations

from collections.abc import Callable

from refund_tui.config import Profile, masked_url
from refund_tui.core.ledger import Ledger, LedgerError
from refund_tui.core.secret import Secret


def open_ledger(profile: Profile, *, create: bool = True, accept: bool = False) -> Ledger:
    """The profile's ledger: the team ledger on PostgreSQL when it names one, else an SQLite
    file (its ``ledger`` path, or its own file in the data directory); either must be the
    ledger this profile first used there (``ledger_registry``) unless ``accept``.
    ``create=False`` refuses to start a new SQLite file. Blocking."""
    from refund_tui.ledger_registry import open_profile_ledger, pin_identity

    if profile.ledger_url is None:
        return open_profile_ledger(profile.name, create=create, path=profile.ledger_path)
    from refund_tui.ledgers.postgres import PostgresLedger, identity_key

    ledger = PostgresLedger(profile.ledger_url, password_source=keyring_password(profile))
    try:
        key = identity_key(profile.ledger_url, ledger.schema)
        pin_identity(profile.name, key, ledger.ledger_id, ledger.location, accept=accept)
    except BaseException:
        ledger.close()
        raise
    return ledger


def keyring_password(profile: Profile) -> Callable[[], Secret]:
    """Where a team ledger's password comes from when libpq's own sources (a service file,
    PGPASSWORD, ~/.pgpass) give none: the profile's ``ledger_password`` in the keyring."""

    def read() -> Secret:
        from refund_tui.core.credentials import CredentialsError, CredentialStore

        asks = f"the team ledger at {masked_url(profile.ledger_url or '')} asks for a password"
        try:
            password = CredentialStore().ledger_password(profile.name)
        except CredentialsError as error:
            raise LedgerError(f"{asks}: {error}") from None
        if password is None:
            raise LedgerError(
                f"{asks} and none is given: store it with `refund-tui credentials set --profile "
                f"{profile.name} --ledger-password`, or give it to libpq (~/.pgpass, PGPASSWORD "
                "or a service file)"
            )
        return password

    return read
