"""``refund-tui approvals|approve|deny|cancel``: four eyes on large refunds (team ledger).

A refund above the team ledger's threshold is recorded as awaiting approval and sent only
when another role holding refund_tui_approver approves it; the database refuses everything
else (``ledgers/postgres_schema``), so these commands only ask and report.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import click

from refund_tui.commands.output import (
    ATTEMPT_HEADER,
    Misuse,
    Refused,
    attempt_line,
    attempt_record,
    never_prompt,
    print_outcome,
)
from refund_tui.commands.refund import report, unknown_outcome
from refund_tui.core.approvals import ApprovalRules
from refund_tui.core.ledger import ApprovalRefused, Attempt, AttemptNotFound, LedgerError
from refund_tui.core.models import ProviderError, RefundStatus
from refund_tui.core.service import OutcomeUnknown, RefundNotAllowed, RefundService
from refund_tui.core.text import printable
from refund_tui.core.validation import amount_confirmed


def requested(attempt: Attempt, rules: ApprovalRules) -> dict[str, object]:
    """Who asked, when, and until when it may be approved."""
    return {
        "requested_by": attempt.recorded_by,
        "requested_from": f"{attempt.operator.name}@{attempt.operator.hostname}",
        "requested_at": attempt.created_at.isoformat(),
        "lapses_at": rules.lapses_at(attempt.created_at).isoformat(),
    }


async def list_approvals(session, as_json: bool) -> int:
    ledger = session.service.ledger
    waiting = await session.service.db.awaiting_approval()
    mine = await session.service.db.awaiting_approval(mine=True)
    rules = ledger.approval_rules()
    may_approve = ledger.may_approve()
    if as_json:
        print_outcome(
            "approvals", f"{len(waiting)} refund(s) await your approval", 0,
            may_approve=may_approve,
            waiting=[{**attempt_record(a), **requested(a, rules)} for a in waiting],
            mine=[{**attempt_record(a), **requested(a, rules)} for a in mine],
        )  # fmt: skip
        return 0
    if not may_approve:
        click.echo(f"role {ledger.role} does not hold refund_tui_approver: nothing waits for you")
    elif not waiting:
        click.echo("nothing awaits your approval")
    if waiting:
        click.echo(ATTEMPT_HEADER)
    for attempt in waiting:
        click.echo(attempt_line(attempt))
        who = requested(attempt, rules)
        click.echo(printable(f"    asked by {who['requested_by']} ({who['requested_from']}) because: "
                             f"{attempt.reason}; lapses {who['lapses_at'][:16]} UTC"))  # fmt: skip
    if mine:
        click.echo(f"your own requests awaiting another approver: {len(mine)}")
        for attempt in mine:
            click.echo(attempt_line(attempt))
    return 0


async def _waiting(service: RefundService, key: str) -> Attempt:
    try:
        return await service.db.get(key)
    except AttemptNotFound as error:
        raise Refused(str(error), code="not_found") from None


async def _show_request(session, attempt: Attempt) -> None:
    """What the confirmation screen shows, plus who asked and why."""
    service: RefundService = session.service
    summary = {"refund": f"{attempt.attempt_id[:8]}  {attempt.status.value.replace('_', ' ')}",
               "profile": f"{attempt.profile} ({attempt.environment.upper()})",
               "provider": attempt.provider.value}  # fmt: skip
    try:
        view = await service.lookup(attempt.provider, attempt.payment_reference)
        payment = view.payment
        summary["payment"] = f"{payment.reference}  {payment.amount.format()}  {payment.status.value}"
        summary["customer"] = payment.customer_name
        other = "" if attempt.phone == payment.customer_phone else f"  NOT the payer's number ({payment.customer_phone})"
        summary["refund to"] = attempt.phone + other
        summary["balance after"] = view.refundable.format()
    except ProviderError as error:
        summary["payment"] = f"{attempt.payment_reference} (could not be read now: {error.message})"
        summary["refund to"] = attempt.phone
    summary["amount"] = attempt.amount.format()
    summary["reason"] = attempt.reason
    summary["asked by"] = f"{attempt.recorded_by} ({attempt.operator.name}@{attempt.operator.hostname})"
    summary["asked at"] = f"{attempt.created_at:%Y-%m-%d %H:%M:%S} UTC"
    width = max(map(len, summary))
    for label, value in summary.items():
        click.echo(f"{label:>{width}}: {printable(value)}")


async def approve_attempt(session, key: str, yes: bool, as_json: bool) -> int:
    never_prompt(as_json, yes, "add --yes to approve and send")
    service: RefundService = session.service
    attempt = await _waiting(service, key)
    if not as_json:
        await _show_request(session, attempt)
    if not yes:
        if attempt.status is not RefundStatus.AWAITING_APPROVAL:  # before asking; the database decides anyway
            raise Refused(f"refund {attempt.attempt_id[:8]} is not awaiting approval: it is "
                          f"{attempt.status.value.replace('_', ' ')}", code="approval_refused")  # fmt: skip
        typed = click.prompt(f"Approve and SEND: type the amount ({attempt.amount.plain()})", default="")
        if not amount_confirmed(typed, attempt.amount):
            raise Refused("the amount typed does not match: nothing approved, nothing sent", code="not_confirmed")
    try:
        sent = await service.approve(attempt.attempt_id)
    except ApprovalRefused as error:
        raise Refused(f"{error}: nothing was sent", code="approval_refused") from None
    except RefundNotAllowed as error:
        raise Refused(str(error), code="not_allowed") from None
    except OutcomeUnknown as error:
        return unknown_outcome(error, as_json)
    return report(sent, as_json)


async def _decide(session, key: str, as_json: bool, act: Callable[[str], Awaitable[Attempt]], done: str) -> int:
    attempt = await _waiting(session.service, key)
    try:
        decided = await act(attempt.attempt_id)
    except ApprovalRefused as error:
        raise Refused(str(error), code="approval_refused") from None
    except LedgerError as error:
        raise Refused(str(error), code="ledger_error") from None
    message = f"{done}: refund {decided.attempt_id[:8]} will never be sent"
    if as_json:
        print_outcome(decided.status.value, message, 0, refund=attempt_record(decided))
    else:
        click.echo(attempt_line(decided))
        click.echo(message)
    return 0


def check_reason(reason: str) -> str:
    """A denial says why: a blank reason cannot run (exit 2)."""
    if not reason.strip():
        raise Misuse("--reason must say why the refund is denied", code="reason_required")
    return reason.strip()


async def deny_attempt(session, key: str, reason: str, as_json: bool) -> int:
    return await _decide(session, key, as_json, lambda attempt_id: session.service.deny(attempt_id, reason), "denied")


async def cancel_attempt(session, key: str, as_json: bool) -> int:
    return await _decide(session, key, as_json, session.service.cancel, "cancelled")
