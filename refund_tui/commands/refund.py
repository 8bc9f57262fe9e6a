"""``refund-tui refund``: summary, confirmation, exactly-once submission, exit code."""

from __future__ import annotations

import json
from dataclasses import dataclass

import click

from refund_tui.commands.output import (
    Misuse,
    Refused,
    attempt_line,
    attempt_record,
    interrupted,
    never_prompt,
    print_outcome,
    refund_fields,
)
from refund_tui.core.ledger import Attempt, AttemptNotFound, CapExceeded, DailyLimitExceeded, LedgerError
from refund_tui.core.models import ProviderError, ProviderName, RefundStatus
from refund_tui.core.service import (
    OutcomeUnknown,
    PreparedRefund,
    RefundNotAllowed,
    RefundService,
    TrailLost,
)
from refund_tui.core.text import printable
from refund_tui.core.validation import RefundInvalid, amount_confirmed
from refund_tui.providers import client_classes


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

    def check_options(self) -> None:
        """Refuse (exit 2, before anything is opened) options that would be ignored or prompt."""
        if not self.dry_run:
            never_prompt(self.as_json, self.yes, "add --yes to send (or --dry-run to check)")
        if client_classes()[ProviderName(self.provider)].sends_phone:
            return
        ignored = " and ".join(option for option, value in (("--phone", self.phone), ("--country", self.country))
                               if value is not None)
        if ignored:
            raise Misuse(
                f"{ignored} cannot be used with {self.provider.title()}: "
                f"{self.provider.title()} refunds always go to the paying wallet",
                code="destination_not_allowed",
            )

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
            problems = "; ".join(f"{field}: {text}" for field, text in error.problems.items())
            raise Refused(problems, code="invalid_refund") from None
        except ProviderError as error:
            raise Refused(error.message, code="provider_error") from None
        except (RefundNotAllowed, AttemptNotFound) as error:
            raise Refused(str(error), code="not_allowed") from None
        if self.dry_run:
            self._show(prepared, session, request=True)
            return 0
        if not self.as_json:
            self._show(prepared, session)
        if not self.yes:
            _confirm(prepared, live=session.profile.is_live)
        try:
            attempt = await service.submit(prepared)
        except ProviderError as error:
            raise Refused(f"{error.message}: nothing was sent", code="provider_error") from None
        except DailyLimitExceeded as error:
            raise Refused(f"{error}: nothing was sent", code="daily_limit") from None
        except (CapExceeded, RefundNotAllowed) as error:
            raise Refused(f"{error}: nothing was sent", code="not_allowed") from None
        except LedgerError as error:
            raise Refused(f"{error}: nothing was sent", code="ledger_error") from None
        except OutcomeUnknown as error:
            return unknown_outcome(error, self.as_json)
        return report(attempt, self.as_json)

    def interrupted(self) -> int:
        """Ctrl+C while the command ran: exit 3, as the refund may already have left."""
        message = (
            "interrupted: if the refund was already sent it is recorded as unknown: do not refund "
            "this payment again; run `refund-tui recover`"
        )
        return interrupted(message, self.as_json)

    def _show(self, prepared: PreparedRefund, session, *, request: bool = False) -> None:
        payment = prepared.view.payment
        built = session.service.provider(payment.provider).build_refund(prepared.draft)
        if self.as_json:
            draft = prepared.draft
            fields = refund_fields(
                built, profile=session.profile.name, environment=session.profile.environment,
                phone_e164=draft.phone_e164, country_id=draft.country_id, reason=draft.reason,
                webhook_url=draft.webhook_url, retry_of=prepared.retry_of,
            )
            print_outcome("dry_run", "dry run: nothing was sent", 0,
                          refund={**fields, "balance_after_minor": prepared.balance_after.minor})
            return
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
            summary["request"] = f"{built.method} {built.path}"
            summary["idempotency key"] = built.idempotency_key or "(none: this API has no key)"
            summary["body"] = built.body
            summary["credentials"] = "sent as headers, never shown"
        width = max(map(len, summary))
        for label, value in summary.items():
            click.echo(f"{label:>{width}}: {printable(value)}")
        if request:
            click.echo("dry run: nothing was sent")


def report(attempt: Attempt, as_json: bool) -> int:
    """Print what became of a sent attempt; its exit code."""
    if attempt.status is RefundStatus.UNKNOWN:
        exit_code, code = 3, "outcome_unknown"
        resolved = (
            "it is resent only with its own key"
            if attempt.request.idempotency_key
            else "this provider takes no key, so it is never resent automatically (`refund-tui "
            f"resend {attempt.attempt_id[:8]}` is your decision, once the record shows nothing)"
        )
        message = (
            "outcome unknown: the provider may have executed it: do not refund this payment "
            f"again. Run `refund-tui recover`; {resolved}."
        )
    elif attempt.status is RefundStatus.FAILED:
        exit_code, code = 1, "provider_refused"
        message = f"refused by the provider: {attempt.failure_reason}"
    elif attempt.status is RefundStatus.AWAITING_APPROVAL:
        exit_code, code = 0, "awaiting_approval"
        message = (
            "awaiting approval: recorded, nothing sent. The team ledger's rules need a second "
            f"person: another role holding refund_tui_approver runs `refund-tui approve "
            f"{attempt.attempt_id[:8]}` (you may `refund-tui cancel {attempt.attempt_id[:8]}` meanwhile)"
        )
    else:
        exit_code, code = 0, "submitted"
        message = f"submitted: {attempt.provider_reference} ({attempt.status.value})"
    if as_json:
        print_outcome(code, message, exit_code, refund=attempt_record(attempt))
    else:
        click.echo(attempt_line(attempt))
        click.echo(printable(message), err=exit_code != 0)
    return exit_code


def unknown_outcome(error: OutcomeUnknown, as_json: bool) -> int:
    """Say that a send was cut short (with the request itself when the ledger went away)."""
    message = f"outcome unknown: {error}"
    trail = error.request_record() if isinstance(error, TrailLost) else None
    if as_json:
        extra = {"trail": trail} if trail else {}
        print_outcome("ledger_lost" if trail else "outcome_unknown", message, 3,
                      refund=attempt_record(error.attempt), **extra)
    else:
        click.echo(printable(message), err=True)
        if trail:
            click.echo(json.dumps(trail, indent=2))
    return 3


def _confirm(prepared: PreparedRefund, *, live: bool) -> None:
    """Ask before sending; a live profile makes the operator type the amount."""
    if not live:
        if not click.confirm("Send this refund?", default=False):
            raise Refused("not confirmed: nothing was sent", code="not_confirmed")
        return
    typed = click.prompt(f"LIVE: type the amount ({prepared.draft.amount.plain()}) to send it", default="")
    if not amount_confirmed(typed, prepared.draft.amount):
        raise Refused("the amount typed does not match: nothing was sent", code="not_confirmed")
