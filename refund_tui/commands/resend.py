"""``refund-tui resend ATTEMPT``: an operator's decision to resend a keyless refund request.

Vesicash takes no idempotency key, so refund-tui never resends its requests by itself. After
the payment record has shown no refund from the attempt for the quiet period, an operator may
decide to: the evidence is shown first, and the amount must be typed back.
"""

from __future__ import annotations

import click

from refund_tui.commands.output import Refused, attempt_line, never_prompt
from refund_tui.commands.refund import report, unknown_outcome
from refund_tui.core.ledger import AttemptNotFound, LedgerError
from refund_tui.core.models import ProviderError
from refund_tui.core.service import OutcomeUnknown, RefundNotAllowed, RefundService
from refund_tui.core.validation import amount_confirmed


async def resend_attempt(session, attempt_id: str, yes: bool, as_json: bool) -> int:
    never_prompt(as_json, yes, "add --yes to resend")
    service: RefundService = session.service
    try:
        evidence = await service.resend_evidence(attempt_id)
    except AttemptNotFound as error:
        raise Refused(str(error), code="not_found") from None
    except LedgerError as error:
        raise Refused(str(error), code="ledger_error") from None
    except ProviderError as error:
        raise Refused(error.message, code="provider_error") from None
    attempt = evidence.attempt
    if not as_json:
        click.echo(attempt_line(attempt))
        for line in evidence.lines():
            click.echo(f"    {line}")
    if evidence.refusal is not None:
        raise Refused(f"not resent: {evidence.refusal}", code="not_allowed")
    if not yes:
        typed = click.prompt(
            f"Resending may pay twice if the first request still executes. Type the amount "
            f"({attempt.amount.plain()}) to resend it",
            default="",
        )
        if not amount_confirmed(typed, attempt.amount):
            raise Refused("the amount typed does not match: nothing was sent", code="not_confirmed")
    try:
        resent = await service.resend(attempt.attempt_id)
    except RefundNotAllowed as error:
        raise Refused(str(error), code="not_allowed") from None
    except ProviderError as error:
        raise Refused(error.message, code="provider_error") from None
    except LedgerError as error:
        raise Refused(str(error), code="ledger_error") from None
    except OutcomeUnknown as error:
        return unknown_outcome(error, as_json)
    return report(resent, as_json)
