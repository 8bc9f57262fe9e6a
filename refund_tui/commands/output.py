"""Shared output for the subcommands: one-line failures, the JSON outcome, attempt summaries.

With ``--json`` every outcome is one JSON object on stdout: ``ok`` (exit code 0), ``code`` (a
stable snake_case word), ``message`` (what a person would read) and ``exit_code``, plus the
command's data. Without it, a failure is one line on stderr: ``refused: ...`` (exit 1) or
``error: ...`` (exit 2, the command cannot run as typed). Text meant for a terminal passes
every string from outside (provider, notice, ledger, file) through ``printable``; JSON is
escaped by ``json.dumps`` (ASCII only) and left as data.
"""

from __future__ import annotations

import json
import sys
from typing import NoReturn

import click

from refund_tui.core.ledger import Attempt, made_by
from refund_tui.core.provider import RefundRequest
from refund_tui.core.text import printable


class Refused(click.ClickException):
    """A refusal the operator can act on: one clear line on stderr, exit code 1."""

    exit_code = 1

    def __init__(self, message: str, code: str = "refused") -> None:
        super().__init__(message)
        self.code = code

    def show(self, file=None) -> None:
        click.echo(f"refused: {printable(self.message)}", err=True)


class Misuse(click.UsageError):
    """The command cannot run as typed (unknown profile, conflicting options): exit code 2."""

    def __init__(self, message: str, code: str = "usage_error") -> None:
        super().__init__(message)
        self.code = code


def never_prompt(as_json: bool, yes: bool, hint: str) -> None:
    """Scripts are never asked anything: ``--json`` without ``--yes`` is a usage error."""
    if as_json and not yes:
        raise Misuse(f"--json never asks for confirmation: {hint}", code="confirmation_required")


def print_outcome(code: str, message: str, exit_code: int, **data: object) -> None:
    """The one JSON object of a ``--json`` run."""
    outcome = {"ok": exit_code == 0, "code": code, "message": message, "exit_code": exit_code, **data}
    click.echo(json.dumps(outcome, indent=2, default=str))


def interrupted(message: str, as_json: bool) -> int:
    """Ctrl+C while refunds were being sent: say what became of them; exit code 3."""
    if as_json:
        print_outcome("interrupted", message, 3)
    else:
        click.echo(message, err=True)
    return 3


def wants_json(args: list[str]) -> bool:
    """True when ``--json`` is among the options, read from the raw arguments so that a
    failure to parse them is reported as JSON too."""
    options = args[: args.index("--")] if "--" in args else args
    return "--json" in options


def fail(error: click.ClickException, *, as_json: bool) -> NoReturn:
    """Report a failure as one JSON object or one line, and exit with its code."""
    usage = isinstance(error, click.UsageError)
    code = getattr(error, "code", "usage_error" if usage else "refused")
    message = error.format_message()
    if as_json:
        print_outcome(code, message, error.exit_code)
    elif isinstance(error, Refused):
        error.show()
    else:
        context = getattr(error, "ctx", None)
        see = f" (see '{context.command_path} --help')" if usage and context and not isinstance(error, Misuse) else ""
        click.echo(f"error: {printable(message)}{see}", err=True)
    sys.exit(error.exit_code)


def refund_fields(request: RefundRequest, *, profile: str, environment: str, phone_e164: str,
                  country_id: str | None, reason: str, webhook_url: str | None,
                  retry_of: str | None) -> dict[str, object]:
    """What a refund asks for, under the same keys before it is sent (``--dry-run``) and after."""
    try:
        body = json.loads(request.body)
    except ValueError:
        body = request.body
    return {
        "profile": profile,
        "environment": environment,
        "provider": request.provider.value,
        "payment_reference": request.payment_reference,
        "amount": request.amount.plain(),
        "amount_minor": request.amount.minor,
        "currency": request.amount.currency,
        "phone_e164": phone_e164,
        "country_id": country_id,
        "reason": reason,
        "webhook_url": webhook_url,
        "retry_of": retry_of,
        "request": {
            "method": request.method,
            "path": request.path,
            "idempotency_key": request.idempotency_key,
            "external_reference": request.external_reference,
            "body": body,
        },
    }


def attempt_record(attempt: Attempt) -> dict[str, object]:
    """An attempt as plain data for ``--json`` output."""
    return {
        "attempt_id": attempt.attempt_id,
        "created_at": attempt.created_at.isoformat(),
        "updated_at": attempt.updated_at.isoformat(),
        **refund_fields(
            attempt.request, profile=attempt.profile, environment=attempt.environment,
            phone_e164=attempt.phone, country_id=attempt.country_id, reason=attempt.reason,
            webhook_url=attempt.webhook_url, retry_of=attempt.retry_of,
        ),
        "refund_reference": attempt.provider_reference,
        "status": attempt.status.value,
        "failure_reason": attempt.failure_reason,
        "flagged": attempt.flagged,
        "double_refunds": list(attempt.double_refunds),
        "operator": attempt.operator.name,
        "recorded_by": attempt.recorded_by,
        "made_by": made_by(attempt),
    }


#: Columns of ``attempt_line``: heading and format spec.
_COLUMNS = (("CREATED", "<19"), ("ATTEMPT", "<8"), ("PROVIDER", "<8"), ("PAYMENT", "<22"),
            ("REFUND", "<28"), ("AMOUNT", ">16"), ("STATUS", "<10"), ("REASON", ""))


def _line(cells: list[str]) -> str:
    shown = (f"{printable(cell):{spec}}" for cell, (_, spec) in zip(cells, _COLUMNS, strict=True))
    return "  ".join(shown).rstrip()


#: The header row above ``attempt_line`` rows.
ATTEMPT_HEADER = _line([heading for heading, _ in _COLUMNS])


def attempt_line(attempt: Attempt) -> str:
    """One readable line: time, provider, payment, reference, amount, status, reason."""
    status = attempt.status.value.upper() + (
        " (DOUBLE REFUND)" if attempt.double_refunds else " (FLAGGED)" if attempt.flagged else ""
    )
    detail = attempt.failure_reason or attempt.reason
    if attempt.double_refunds:
        detail = (
            f"paid twice: {', '.join(attempt.double_refunds)} carries its tag too; recover it "
            "from the customer or ask the provider to reverse it"
        )
    return _line([
        attempt.created_at.strftime("%Y-%m-%d %H:%M:%S"), attempt.attempt_id[:8], attempt.provider.value,
        attempt.payment_reference, attempt.provider_reference or "-", attempt.amount.format(), status, detail,
    ])
