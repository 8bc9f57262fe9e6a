"""``refund-tui ledger``: the ledger itself (starting one afresh on purpose)."""

from __future__ import annotations

import click

from refund_tui.commands.output import Refused
from refund_tui.config import ConfigError, load_config, paths
from refund_tui.core.ledger import LedgerError
from refund_tui.ledger_registry import open_profile_ledger, start_afresh


def init_ledger(profile_name: str | None, force: bool) -> None:
    """Create the profile's ledger; with ``force``, set aside whatever is there and start anew."""
    try:
        profile = load_config().profile(profile_name).name
        if force:
            ledger, moved = start_afresh(profile)
        else:
            if paths().ledger_file(profile).exists():
                raise Refused(
                    f"profile '{profile}' already has a ledger ({paths().ledger_file(profile)}); "
                    "--force sets it aside and starts a new, empty one"
                )
            ledger, moved = open_profile_ledger(profile), []
    except (ConfigError, LedgerError) as error:
        raise Refused(str(error)) from None
    with ledger:
        for path in moved:
            click.echo(f"set aside: {path}")
        click.echo(f"new empty ledger {ledger.ledger_id[:8]} for profile '{profile}': {ledger.path}")
