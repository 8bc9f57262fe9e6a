"""``refund-tui ledger``: the ledger itself.

``init`` creates a profile's SQLite ledger (``--force``: starts afresh on purpose, the old
file set aside). For a team ledger on PostgreSQL, run by its owner: ``setup`` creates (or
migrates) the schema and the group roles; ``grant``/``revoke`` give a database login one of
those roles: refund_tui_viewer (read), refund_tui_operator (record refunds),
refund_tui_receiver (record webhook notices), refund_tui_approver (an operator who may also
approve other roles' refunds awaiting approval). ``setup`` also writes the profile's approval
rules and daily limits into the ledger; ``rules`` shows them. Logins themselves are made with the database's
own tools (``CREATE ROLE ama LOGIN``), as are their passwords or certificates. ``verify``
recomputes the hash chain of either kind of ledger (``ledgers/chain.py``).
"""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

import click

from refund_tui.commands.output import Refused, print_outcome
from refund_tui.config import ConfigError, Profile, load_config, masked_url, paths
from refund_tui.core.approvals import ApprovalRules
from refund_tui.core.ledger import LedgerError
from refund_tui.ledger_registry import open_profile_ledger, start_afresh
from refund_tui.ledgers import keyring_password, open_ledger


def init_ledger(profile_name: str | None, force: bool) -> None:
    """Create the profile's ledger; with ``force``, set aside whatever is there and start anew."""
    try:
        chosen = load_config().profile(profile_name)
        profile = chosen.name
        if chosen.ledger_url is not None:
            if not force:
                raise Refused(
                    f"profile '{profile}' uses the team ledger at {masked_url(chosen.ledger_url)}: "
                    "its owner sets it up with `refund-tui ledger setup`"
                )
            with open_ledger(chosen, accept=True) as team:
                click.echo(f"accepted team ledger {team.ledger_id[:8]} for profile '{profile}': "
                           f"{team.location}")  # fmt: skip
            return
        path = chosen.ledger_path or paths().ledger_file(profile)
        if force:
            ledger, moved = start_afresh(profile, path=path)
        else:
            if path.exists():
                raise Refused(
                    f"profile '{profile}' already has a ledger ({path}); "
                    "--force sets it aside and starts a new, empty one"
                )
            ledger, moved = open_profile_ledger(profile, path=path), []
    except (ConfigError, LedgerError) as error:
        raise Refused(str(error)) from None
    with ledger:
        for aside in moved:
            click.echo(f"set aside: {aside}")
        click.echo(f"new empty ledger {ledger.ledger_id[:8]} for profile '{profile}': {ledger.path}")


def _team_profile(profile_name: str) -> Profile:
    try:
        profile = load_config().profile(profile_name)
    except ConfigError as error:
        raise Refused(str(error)) from None
    if profile.ledger_url is None:
        raise Refused(
            f"profile '{profile.name}' keeps its ledger in an SQLite file: set its "
            '`ledger = "postgresql://ROLE@HOST:PORT/DB"` to use a team ledger'
        )
    return profile


def setup_ledger(profile_name: str) -> None:
    from refund_tui.ledgers.postgres import set_rules, setup

    profile = _team_profile(profile_name)
    rules = profile.rules or ApprovalRules()
    password_source = keyring_password(profile)
    try:
        before, after = setup(profile.ledger_url, password_source=password_source)
        changed = set_rules(profile.ledger_url, rules, password_source=password_source)
    except LedgerError as error:
        raise Refused(str(error)) from None
    where = masked_url(profile.ledger_url)
    if before == after:
        click.echo(f"the team ledger at {where} is up to date (schema version {after})")
    else:
        click.echo(f"the team ledger at {where} is at schema version {after} (was {before})")
    if changed:
        click.echo("its rules are now those of this profile's config (the previous ones stay on record):")
        for line in rules.lines():
            click.echo(f"  {line}")


def show_rules(profile_name: str, as_json: bool) -> None:
    """The approval rules and daily limits the team ledger enforces (whatever the config says)."""
    from refund_tui.ledgers.postgres import PostgresLedger

    profile = _team_profile(profile_name)
    try:
        with PostgresLedger(profile.ledger_url, password_source=keyring_password(profile), pool_size=1) as ledger:
            rules, approver, role = ledger.approval_rules(), ledger.may_approve(), ledger.role
    except LedgerError as error:
        raise Refused(str(error)) from None
    if as_json:
        above, hours, daily = rules.as_stored()
        print_outcome("rules", "; ".join(rules.lines()), 0, role=role, may_approve=approver,
                      approval_above_minor=above, expires_hours=hours, per_operator_daily_minor=daily)  # fmt: skip
        return
    click.echo(f"rules of the team ledger at {masked_url(profile.ledger_url)}:")
    for line in rules.lines():
        click.echo(f"  {line}")
    click.echo(f"you ({role}) {'may' if approver else 'may not'} approve other roles' refunds")


def change_role(profile_name: str, login: str, role: str, *, grant: bool) -> None:
    from refund_tui.ledgers.postgres import change_membership

    profile = _team_profile(profile_name)
    try:
        change_membership(profile.ledger_url, login, role, grant=grant,
                          password_source=keyring_password(profile))  # fmt: skip
    except LedgerError as error:
        raise Refused(str(error)) from None
    click.echo(f"{'granted' if grant else 'revoked'} {role} {'to' if grant else 'from'} {login}")


def import_ledger(profile_name: str, path: Path) -> None:
    from refund_tui.ledgers.postgres import PostgresLedger

    profile = _team_profile(profile_name)
    try:
        with PostgresLedger(profile.ledger_url, password_source=keyring_password(profile)) as ledger:
            report = ledger.import_solo(path)
    except LedgerError as error:
        raise Refused(str(error)) from None
    click.echo(report.summary())


def verify_ledger(profile_name: str | None, as_json: bool) -> int:
    """Recompute the profile's hash chain; exit 0 when intact, 1 at the first break."""
    try:
        with closing(open_ledger(load_config().profile(profile_name), create=False)) as ledger:
            verdict = ledger.verify_chain()
    except (ConfigError, LedgerError) as error:
        raise Refused(str(error)) from None
    broken = verdict.broken
    if broken is None:
        message = f"the ledger's chain is intact: {verdict.count} records, newest link {verdict.head}"
    else:
        message = broken.message
    if as_json:
        details = None if broken is None else {
            "link": broken.seq, "table": broken.table, "key": broken.key, "event_id": broken.event_id,
        }  # fmt: skip
        print_outcome("intact" if broken is None else "chain_broken", message, int(broken is not None),
                      records=verdict.count, head=verdict.head, broken=details)  # fmt: skip
        return int(broken is not None)
    if broken is not None:
        raise Refused(message, code="chain_broken")
    click.echo(message)
    return 0
