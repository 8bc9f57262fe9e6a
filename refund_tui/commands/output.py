"""Shared output for the subcommands: one-line refusals, JSON, attempt summaries."""

from __future__ import annotations

import json

import click

from refund_tui.core.ledger import Attempt


class Refused(click.ClickException):
    """A refusal the operator can act on: one clear line on stderr, exit code 1."""

    exit_code = 1

    def show(self, file=None) -> None:
        click.echo(f"refused: {self.message}", err=True)


def print_json(data: object) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def attempt_record(attempt: Attempt) -> dict[str, object]:
    """An attempt as plain data for ``--json`` output."""
    return {
        "attempt_id": attempt.attempt_id,
        "created_at": attempt.created_at.isoformat(),
        "updated_at": attempt.updated_at.isoformat(),
        "profile": attempt.profile,
        "environment": attempt.environment,
        "provider": attempt.provider.value,
        "payment_reference": attempt.payment_reference,
        "refund_reference": attempt.provider_reference,
        "amount": attempt.amount.plain(),
        "amount_minor": attempt.amount.minor,
        "currency": attempt.amount.currency,
        "phone": attempt.phone,
        "reason": attempt.reason,
        "status": attempt.status.value,
        "failure_reason": attempt.failure_reason,
        "flagged": attempt.flagged,
        "double_refunds": list(attempt.double_refunds),
        "retry_of": attempt.retry_of,
        "operator": attempt.operator.name,
    }


def attempt_line(attempt: Attempt) -> str:
    """One readable line: time, provider, payment, reference, amount, status, reason."""
    when = attempt.created_at.strftime("%Y-%m-%d %H:%M:%S")
    status = attempt.status.value.upper() + (
        " (DOUBLE REFUND)" if attempt.double_refunds else " (FLAGGED)" if attempt.flagged else ""
    )
    detail = attempt.failure_reason or attempt.reason
    if attempt.double_refunds:
        detail = (
            f"paid twice: {', '.join(attempt.double_refunds)} carries its tag too; recover it "
            "from the customer or ask the provider to reverse it"
        )
    return (
        f"{when}  {attempt.attempt_id[:8]}  {attempt.provider.value:<8}  "
        f"{attempt.payment_reference:<22}  {attempt.provider_reference or '-':<24}  "
        f"{attempt.amount.format():>16}  {status:<10}  {detail}"
    )
