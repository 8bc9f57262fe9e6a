"""``refund-tui refund``: summary, confirmation, exactly-once submission, exit code."""

from __future__ import annotations

import json
from dataclasses import dataclass

import click

from refund_tui.commands.output import Refused, attempt_line, attempt_record, print_json
from refund_tui.core.ledger import Attempt, AttemptNotFound, CapExceeded, LedgerError
from refund_tui.core.models import Country, ProviderError, ProviderName, RefundStatus
from refund_tui.core.service import (
    OutcomeUnknown,
    PaymentView,
    PreparedRefund,
    RefundNotAllowed,
    RefundService,
    TrailLost,
)
from refund_tui.core.validation import RefundInvalid, amount_confirmed

EXIT_CODES = {RefundStatus.FAILED: 1, RefundStatus.UNKNOWN: 3}


@dataclass(frozen=True)
class RefundCommand:
    provider: str
    payment_reference: str
    amount: str
    reason: str
    phone: str | None
    country: str | None
    webhook_url: str
    retry_of: str | None
    dry_run: bool
    yes: bool
    as_json: bool

    async def run(self, session) -> int:
        service: RefundService = session.service
        name = ProviderName(self.provider)
        try:
            view = await service.lookup(name, self.payment_reference)
            country = await service.refund_country(view, self.country)
            prepared = service.prepare(
                view,
                amount=self.amount,
                reason=self.reason,
                phone=self.phone,
                country=country,
                webhook_url=self.webhook_url,
                retry_of=self.retry_of,
            )
        except RefundInvalid as error:
            raise Refused("; ".join(f"{field}: {text}" for field, text in error.problems.items())) from None
        except (ProviderError, RefundNotAllowed, AttemptNotFound, LedgerError) as error:
            raise Refused(_message(error)) from None
        if self.dry_run:
            self._show(prepared, session, request=True)
            return 0
        if not self.as_json:
            self._show(prepared, session)
        if not self.yes:
            _confirm(prepared, live=session.profile.is_live)
        try:
            attempt = await service.submit(prepared)
        except (CapExceeded, RefundNotAllowed, ProviderError, LedgerError) as error:
            raise Refused(_message(error) + ": nothing was sent") from None
        except OutcomeUnknown as error:
            return unknown_outcome(error)
        return report(attempt, self.as_json)

    def _show(self, prepared: PreparedRefund, session, *, request: bool = False) -> None:
        payment = prepared.view.payment
        summary = {
            "profile": f"{session.profile.name} ({session.profile.environment.upper()})",
            "provider": payment.provider.value,
            "payment": f"{payment.reference}  {payment.amount.format()}  {payment.status.value}",
            "customer": payment.customer_name,
            "refund to": f"{prepared.phone.display}"
            + (f"  ({prepared.phone.carrier})" if prepared.phone.carrier else "")
            + (f"  NOT the payer's number ({payment.customer_phone})" if prepared.to_another_wallet else ""),
            "amount": prepared.draft.amount.format(),
            "balance after": prepared.balance_after.format(),
            "reason": prepared.draft.reason,
        }
        if request:
            built = session.service.provider(payment.provider).build_refund(prepared.draft)
            summary["request"] = f"{built.method} {built.path}"
            summary["idempotency key"] = built.idempotency_key or "(none: this API has no key)"
            summary["body"] = built.body
            summary["credentials"] = "sent as headers, never shown"
        if self.as_json:
            print_json({"dry_run": request, **summary, **({"body": json.loads(summary["body"])} if request else {})})
            return
        width = max(map(len, summary))
        for label, value in summary.items():
            click.echo(f"{label:>{width}}: {value}")
        if request:
            click.echo("dry run: nothing was sent")


def report(attempt: Attempt, as_json: bool) -> int:
    """Print what became of a sent attempt; its exit code."""
    if as_json:
        print_json(attempt_record(attempt))
    else:
        click.echo(attempt_line(attempt))
    if attempt.status is RefundStatus.UNKNOWN:
        resolved = (
            "it is resent only with its own key"
            if attempt.request.idempotency_key
            else "this provider takes no key, so it is never resent automatically (`refund-tui "
            f"resend {attempt.attempt_id[:8]}` is your decision, once the record shows nothing)"
        )
        click.echo(
            "outcome unknown: the provider may have executed it: do not refund this payment "
            f"again. Run `refund-tui recover`; {resolved}.",
            err=True,
        )
    elif attempt.status is RefundStatus.FAILED:
        click.echo(f"refused by the provider: {attempt.failure_reason}", err=True)
    elif not as_json:
        click.echo(f"submitted: {attempt.provider_reference} ({attempt.status.value})")
    return EXIT_CODES.get(attempt.status, 0)


def unknown_outcome(error: OutcomeUnknown) -> int:
    """Say that a send was cut short (with the request itself when the ledger went away)."""
    click.echo(f"outcome unknown: {error}", err=True)
    if isinstance(error, TrailLost):
        print_json(error.request_record())
    return 3


def _confirm(prepared: PreparedRefund, *, live: bool) -> None:
    """Ask before sending; a live profile makes the operator type the amount."""
    if not live:
        if not click.confirm("Send this refund?", default=False):
            raise Refused("not confirmed: nothing was sent")
        return
    typed = click.prompt(f"LIVE: type the amount ({prepared.draft.amount.plain()}) to send it", default="")
    if not amount_confirmed(typed, prepared.draft.amount):
        raise Refused("the amount typed does not match: nothing was sent")


def _message(error: Exception) -> str:
    return error.message if isinstance(error, ProviderError) else str(error)
