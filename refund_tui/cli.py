"""The ``refund-tui`` command: the console by default, plus scriptable subcommands.

Exit codes: 0 done, 1 refused (validation or provider), 2 usage error (the command cannot run
as typed), 3 outcome unknown and needing ``refund-tui recover``, 4 (``status REF`` only) still
in flight. With ``--json`` every outcome, usage errors included, is one JSON object on stdout
(see ``commands/output.py``).
"""

from __future__ import annotations

import asyncio
import functools
import math
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC
from pathlib import Path
from typing import NoReturn, TypeVar

import click

from refund_tui import __version__

T = TypeVar("T")


class RefundCli(click.Group):
    """The root command: every failure, click's own usage errors included, is one line on
    stderr or, with ``--json`` among the arguments, one JSON object on stdout."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        from refund_tui.commands.output import fail, wants_json

        args = sys.argv[1:] if args is None else list(args)
        try:
            _check_text(args)
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as error:
            fail(error, as_json=wants_json(args))
        except click.Abort:
            stopped(as_json=wants_json(args))
        sys.exit(result if isinstance(result, int) else 0)


def stopped(*, as_json: bool) -> NoReturn:
    """Ctrl+C or end of input before anything was sent: say so; exit code 1."""
    from refund_tui.commands.output import Refused, fail

    fail(Refused("stopped: nothing was sent or stored", code="aborted"), as_json=as_json)


def _check_text(args: list[str]) -> None:
    """Arguments that are not valid UTF-8 (a Latin-1 terminal) are refused before any use."""
    from refund_tui.commands.output import Misuse

    for position, arg in enumerate(args, start=1):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            raise Misuse(
                f"argument {position} is not valid UTF-8 text: set your terminal to UTF-8",
                code="not_utf8",
            ) from None


class Seconds(click.FloatRange):
    """A finite number of seconds within bounds (click's FloatRange lets NaN through)."""

    name = "seconds"

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if math.isnan(number):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        return number


PORT = click.IntRange(1, 65535)
LIMIT = click.IntRange(1, 10_000)


def _regular_file(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """A path that is a regular file or not there yet: a FIFO or a device would never end."""
    if value is not None and value.exists() and not value.is_file():
        raise click.BadParameter(f"{value} is not a regular file", ctx, param)
    return value


def _known_profile(name: str | None) -> str:
    """The name of the profile ``name`` (None: the config's default); Misuse (exit 2) when
    there is no such profile or the config cannot be used."""
    from refund_tui.commands.output import Misuse
    from refund_tui.config import ConfigError, UnknownProfile, load_config

    try:
        return load_config().profile(name).name
    except UnknownProfile as error:
        raise Misuse(str(error), code="unknown_profile") from None
    except ConfigError as error:
        raise Misuse(str(error), code="config_error") from None


def _group_profile(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    return None if value is None else _known_profile(value)


def _command_profile(ctx: click.Context, param: click.Parameter, value: str | None) -> str:
    """The profile typed after the command, else before it (``refund-tui --profile P CMD``),
    else the config's default. Typed in both places, the two must agree."""
    from refund_tui.commands.output import Misuse

    before = ctx.find_root().params.get("profile_name")
    if value is not None and before is not None and value != before:
        raise Misuse(
            f"--profile {before} before the command and --profile {value} after it disagree: give one",
            code="profile_conflict",
        )
    return _known_profile(value if value is not None else before)


profile_option = click.option(
    "--profile", "profile_name", default=None, callback=_command_profile,
    help="Profile to use (default: the one given before the command, else the config's default, else sandbox).",
)
json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object (never prompts: needs --yes to send)."
)


@click.group(cls=RefundCli, invoke_without_command=True)
@click.option("--profile", "profile_name", default=None, callback=_group_profile,
              help="Profile for the console or any command (default: the config's default, else sandbox).")
@click.version_option(__version__, prog_name="refund-tui")
@click.pass_context
def main(ctx: click.Context, profile_name: str | None) -> None:
    """Mobile-money refund console. With no command, opens the console."""
    if ctx.invoked_subcommand is None:
        from refund_tui.tui.app import RefundApp

        RefundApp(profile_name=profile_name).run()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True, type=PORT)
@click.option("--state", "state_path", type=click.Path(dir_okay=False, path_type=Path), callback=_regular_file,
              help="Keep the world in this JSON file.")
@click.option("--settle-seconds", default=1.0, show_default=True, type=Seconds(0.001, 600),
              help="Settlement speed unit.")
def sandbox(host: str, port: int, state_path: Path | None, settle_seconds: float) -> None:
    """Run the built-in simulator of both providers (demo credentials are fake)."""
    from refund_tui.sandbox.server import serve
    from refund_tui.serving import ServeError

    try:
        serve(host, port, state_path=state_path, settle_seconds=settle_seconds)
    except ServeError as error:
        raise click.ClickException(str(error)) from None


def _run(profile_name: str, work: Callable[[object], Awaitable[T]]) -> T:
    """Open the profile's session, run ``work(session)``, always close it."""
    from refund_tui.commands.credentials import unlock_for_profile
    from refund_tui.commands.output import Misuse, Refused
    from refund_tui.config import ConfigError
    from refund_tui.core.credentials import CredentialsError
    from refund_tui.core.ledger import LedgerError
    from refund_tui.serving import ServeError
    from refund_tui.session import Session, SessionError

    unlock_for_profile(profile_name)
    try:
        session = Session.open(profile_name)
    except ConfigError as error:
        raise Misuse(str(error), code="config_error") from None
    except CredentialsError as error:
        raise Refused(str(error), code="credentials_error") from None
    except LedgerError as error:
        raise Refused(str(error), code="ledger_error") from None
    except (SessionError, ServeError) as error:
        raise Refused(str(error), code="unavailable") from None

    async def runner() -> T:
        try:
            return await work(session)
        except LedgerError as error:
            raise Refused(str(error), code="ledger_error") from None
        finally:
            await session.aclose()

    return asyncio.run(runner())


@main.command()
@profile_option
@click.option("--provider", required=True, type=click.Choice(["vesicash", "novasend"]))
@click.option("--payment", "payment_reference", required=True, help="The payment reference.")
@click.option("--amount", required=True, help='Amount in major units, e.g. "1,500", "1 500" or "12.50".')
@click.option("--reason", required=True, help="Why the customer is refunded.")
@click.option("--phone", default=None, help="Destination wallet (Vesicash only; default: the payment's).")
@click.option("--country", default=None,
              help="Country ISO code or Vesicash country id (Vesicash only; default: the payment's).")
@click.option("--webhook-url", default="", help="HTTPS URL for the provider's notification.")
@click.option("--retry-of", default=None, help="Attempt id of the failed refund this one retries.")
@click.option("--dry-run", is_flag=True, help="Validate and show the request without sending.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
def refund(profile_name, provider, payment_reference, amount, reason, phone, country, webhook_url,
           retry_of, dry_run, yes, as_json) -> None:
    """Refund part or all of a payment, exactly once."""
    from refund_tui.commands.refund import RefundCommand

    command = RefundCommand(provider, payment_reference, amount, reason, phone, country,
                            webhook_url, retry_of, dry_run, yes, as_json)
    command.check_options()
    try:
        code = _run(profile_name, command.run)
    except KeyboardInterrupt:
        code = command.interrupted()
    sys.exit(code)


@main.command()
@profile_option
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Check every row and show the totals; send nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(1, 32),
              help="Refunds sent at once.")
@click.option("--resend-unknown", is_flag=True,
              help="First resend the file's Vesicash rows of unknown outcome that pass the checks "
                   "of `refund-tui resend` (quiet period over, record read, clocks agree).")
@json_option
def batch(profile_name, file, dry_run, yes, concurrency, resend_unknown, as_json) -> None:
    """Refund every row of a CSV file (provider,payment,amount,reason[,phone,country,webhook_url]),
    each row once however often the file is run; results in FILE.results.csv."""
    from refund_tui.commands.batch import BatchCommand

    from refund_tui.commands.output import interrupted, never_prompt

    if not dry_run:
        never_prompt(as_json, yes, "add --yes to send (or --dry-run to check)")
    try:
        code = _run(profile_name, BatchCommand(file, dry_run, yes, as_json, concurrency, resend_unknown).run)
    except KeyboardInterrupt:
        code = interrupted(
            "interrupted: rows already sent are recorded; run the same file again to resume "
            "(no row is sent twice), or `refund-tui recover`",
            as_json,
        )
    sys.exit(code)


@main.command()
@profile_option
@click.option("--since", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]), default=None,
              help="Only payments with a refund attempt since then (UTC).")
@click.option("--provider", type=click.Choice(["vesicash", "novasend"]), default=None)
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the findings to this CSV file.")
@click.option("--ack", "finding_id", default=None, help="Acknowledge this finding (with --note).")
@click.option("--note", default="", help="What you found, recorded with --ack.")
@json_option
def reconcile(profile_name, since, provider, csv_path, finding_id, note, as_json) -> None:
    """Compare every payment the ledger touched with the provider's record: refunds missing on
    either side, double refunds, status and amount mismatches. Exit 0 clean, 1 with findings."""
    from refund_tui.commands.reconcile import acknowledge, run_reconcile

    since_utc = since.replace(tzinfo=UTC) if since else None
    if finding_id is not None:
        sys.exit(_run(profile_name, lambda session: acknowledge(session, since_utc, provider, finding_id, note, as_json)))
    sys.exit(_run(profile_name, lambda session: run_reconcile(session, since_utc, provider, as_json, csv_path)))


@main.command()
@profile_option
@click.argument("reference", required=False)
@click.option("--watch", is_flag=True, help="Keep polling until every refund shown is final.")
@click.option("--limit", default=50, show_default=True, type=LIMIT, help="How many refunds to show.")
@json_option
def status(profile_name, reference, watch, limit, as_json) -> None:
    """Refunds from the ledger with their live status (REF: attempt id, refund or payment reference).

    With REF the exit code says where it stands: 0 completed, 1 failed, reversed, denied or
    cancelled, 3 outcome unknown, 4 still in flight or awaiting approval (several refunds:
    the most urgent).
    """
    from refund_tui.commands.status import show_status

    sys.exit(_run(profile_name, lambda session: show_status(session, reference, watch, limit, as_json)))


@main.command()
@profile_option
@json_option
def recover(profile_name, as_json) -> None:
    """Resolve every pending or unknown refund attempt (runs at console start-up too)."""
    from refund_tui.commands.status import run_recovery

    sys.exit(_run(profile_name, lambda session: run_recovery(session, as_json)))


@main.command()
@profile_option
@click.argument("attempt_id")
@click.option("--yes", is_flag=True, help="Do not ask to type the amount back.")
@json_option
def resend(profile_name, attempt_id, yes, as_json) -> None:
    """Resend a Vesicash refund of unknown outcome, on your decision, once the payment record
    has shown no refund from it for the quiet period (never done automatically)."""
    from refund_tui.commands.resend import resend_attempt

    sys.exit(_run(profile_name, lambda session: resend_attempt(session, attempt_id, yes, as_json)))


_TAKE_OVER = click.option("--take-over", is_flag=True,
                          help="Act on someone else's claim (the ledger keeps both names).")


@main.command()
@profile_option
@click.argument("attempt_id")
@_TAKE_OVER
@json_option
def claim(profile_name, attempt_id, take_over, as_json) -> None:
    """Say you are on a refund ("I'm on it"): every board and details screen shows it.
    ATTEMPT_ID: an attempt id (or its first 8 characters) or a provider reference."""
    from refund_tui.commands.claims import claim_attempt

    sys.exit(claim_attempt(profile_name, attempt_id, take_over, as_json))


@main.command()
@profile_option
@click.argument("attempt_id")
@_TAKE_OVER
@json_option
def release(profile_name, attempt_id, take_over, as_json) -> None:
    """Say nobody is on a refund any more (your claim, or with --take-over someone else's)."""
    from refund_tui.commands.claims import release_attempt

    sys.exit(release_attempt(profile_name, attempt_id, take_over, as_json))


@main.command()
@profile_option
@click.argument("attempt_id")
@click.argument("text")
@json_option
def note(profile_name, attempt_id, text, as_json) -> None:
    """Add a note to a refund's timeline (kept for good, with your name; in exports too)."""
    from refund_tui.commands.claims import note_attempt

    sys.exit(note_attempt(profile_name, attempt_id, text, as_json))


@main.command()
@profile_option
@json_option
def approvals(profile_name, as_json) -> None:
    """Refunds awaiting your approval (team ledger): who asked, why, until when."""
    from refund_tui.commands.approvals import list_approvals

    sys.exit(_run(profile_name, lambda session: list_approvals(session, as_json)))


@main.command()
@profile_option
@click.argument("attempt_id")
@click.option("--yes", is_flag=True, help="Do not ask to type the amount back.")
@json_option
def approve(profile_name, attempt_id, yes, as_json) -> None:
    """Approve another operator's refund awaiting approval and send it, exactly once."""
    from refund_tui.commands.approvals import approve_attempt

    sys.exit(_run(profile_name, lambda session: approve_attempt(session, attempt_id, yes, as_json)))


@main.command()
@profile_option
@click.argument("attempt_id")
@click.option("--reason", required=True, help="Why it is denied (recorded, shown to the requester).")
@json_option
def deny(profile_name, attempt_id, reason, as_json) -> None:
    """Deny a refund awaiting approval: it is never sent."""
    from refund_tui.commands.approvals import check_reason, deny_attempt

    reason = check_reason(reason)
    sys.exit(_run(profile_name, lambda session: deny_attempt(session, attempt_id, reason, as_json)))


@main.command()
@profile_option
@click.argument("attempt_id")
@json_option
def cancel(profile_name, attempt_id, as_json) -> None:
    """Withdraw your own refund while it awaits approval: it is never sent."""
    from refund_tui.commands.approvals import cancel_attempt

    sys.exit(_run(profile_name, lambda session: cancel_attempt(session, attempt_id, as_json)))


@main.group()
def ledger() -> None:
    """The refund ledger itself; a team ledger's setup and roles (run by its owner)."""


@ledger.command("init")
@profile_option
@click.option("--force", is_flag=True, help="Set aside the current ledger file (kept, renamed) and start anew.")
def ledger_init(profile_name, force) -> None:
    """Create the profile's ledger; with --force, start afresh after a lost or replaced one."""
    from refund_tui.commands.ledger import init_ledger

    init_ledger(profile_name, force)


@ledger.command("verify")
@profile_option
@json_option
def ledger_verify(profile_name, as_json) -> None:
    """Recompute the ledger's hash chain: exit 0 when intact, 1 at the first break (named)."""
    from refund_tui.commands.ledger import verify_ledger

    sys.exit(verify_ledger(profile_name, as_json))


@main.command()
@profile_option
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@click.option("--since", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]), default=None)
@click.option("--output", "-o", type=click.File("w"), default="-", help="File to write (default: stdout).")
def export(profile_name, fmt, since, output) -> None:
    """Write the audit trail (every attempt and status change) as CSV or JSON."""
    from refund_tui.commands.status import write_export

    since_utc = since.replace(tzinfo=UTC) if since else None
    write_export(fmt, since_utc, output, profile_name)


@main.group()
def credentials() -> None:
    """Provider credentials kept in the OS keyring (never printed)."""


def _credential_target(func, required: bool = True):
    func = click.option("--provider", required=required, type=click.Choice(["vesicash", "novasend"]))(func)
    return profile_option(func)


_LEDGER_PASSWORD_OPTION = click.option(
    "--ledger-password", is_flag=True,
    help="The profile's team ledger (PostgreSQL) password instead of a provider's credentials.",
)  # fmt: skip


def _provider_or_ledger(provider: str | None, ledger_password: bool) -> None:
    from refund_tui.commands.output import Misuse

    if (provider is None) == (not ledger_password):
        raise Misuse("give --provider or --ledger-password (one of them)")


@credentials.command("set")
@functools.partial(_credential_target, required=False)
@click.option("--webhook-secret", is_flag=True, help="Store only the secret the provider signs webhooks with.")
@_LEDGER_PASSWORD_OPTION
def credentials_set(profile_name, provider, webhook_secret, ledger_password) -> None:
    """Store credentials, read without echo."""
    from refund_tui.commands.credentials import set_credentials, set_ledger_password

    _provider_or_ledger(provider, ledger_password)
    if ledger_password:
        set_ledger_password(profile_name)
    else:
        set_credentials(profile_name, provider, webhook_secret)


@credentials.command("status")
@_credential_target
def credentials_status(profile_name, provider) -> None:
    """Which credentials exist and where (never their values); the keyring backend in use."""
    from refund_tui.commands.credentials import show_credentials

    sys.exit(show_credentials(profile_name, provider))


@credentials.command("delete")
@functools.partial(_credential_target, required=False)
@_LEDGER_PASSWORD_OPTION
def credentials_delete(profile_name, provider, ledger_password) -> None:
    """Remove stored credentials."""
    from refund_tui.commands.credentials import delete_credentials, delete_ledger_password

    _provider_or_ledger(provider, ledger_password)
    if ledger_password:
        delete_ledger_password(profile_name)
    else:
        delete_credentials(profile_name, provider)


@main.group()
def webhooks() -> None:
    """Receive the providers' signed refund notifications into the ledger."""


@webhooks.command("serve")
@profile_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8766, show_default=True, type=PORT)
def webhooks_serve(profile_name, host, port) -> None:
    """Verify each notification and record it as a status change (source: webhook)."""
    from refund_tui.commands.webhooks import serve_webhooks

    serve_webhooks(profile_name, host, port)


@webhooks.command("list")
@profile_option
@click.option("--kept", is_flag=True, help="Only notifications no refund attempt matches yet.")
@click.option("--limit", default=50, show_default=True, type=LIMIT, help="How many to show.")
@json_option
def webhooks_list(profile_name, kept, limit, as_json) -> None:
    """Notifications received, newest first, with what each did."""
    from refund_tui.commands.webhooks import list_notices

    list_notices(profile_name, kept, limit, as_json)


@ledger.command("setup")
@click.option("--profile", "profile_name", required=True)
def ledger_setup(profile_name) -> None:
    """Create or migrate the schema and the roles refund_tui_viewer, _operator, _receiver and
    _approver; write the profile's approval rules and daily limits into the ledger."""
    from refund_tui.commands.ledger import setup_ledger

    setup_ledger(profile_name)


@ledger.command("rules")
@profile_option
@json_option
def ledger_rules(profile_name, as_json) -> None:
    """The approval rules and daily limits the team ledger enforces for everyone."""
    from refund_tui.commands.ledger import show_rules

    show_rules(profile_name, as_json)


_ROLE_CHOICE = click.Choice(
    ["refund_tui_viewer", "refund_tui_operator", "refund_tui_receiver", "refund_tui_approver"]
)


@ledger.command("grant")
@click.option("--profile", "profile_name", required=True)
@click.argument("login")
@click.argument("role", type=_ROLE_CHOICE)
def ledger_grant(profile_name, login, role) -> None:
    """Give a database login one of the refund-tui roles."""
    from refund_tui.commands.ledger import change_role

    change_role(profile_name, login, role, grant=True)


@ledger.command("revoke")
@click.option("--profile", "profile_name", required=True)
@click.argument("login")
@click.argument("role", type=_ROLE_CHOICE)
def ledger_revoke(profile_name, login, role) -> None:
    """Take one of the refund-tui roles from a database login."""
    from refund_tui.commands.ledger import change_role

    change_role(profile_name, login, role, grant=False)


@ledger.command("import")
@click.option("--profile", "profile_name", required=True)
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
def ledger_import(profile_name, file) -> None:
    """Copy a solo SQLite ledger into the team ledger (ids intact; running it twice adds nothing)."""
    from refund_tui.commands.ledger import import_ledger

    import_ledger(profile_name, file)
