"""Reconciliation: does each provider's record of a payment agree with the ledger?

For every payment the ledger touched in a period, the provider's payment record is read
(bounded concurrency, reads retried with backoff) and each refund on it is matched to an
attempt by the attempt's own provider reference or tag, never by amounts or clocks. What does
not agree becomes a finding naming both sides. Reading records is all it does, except what
every read of a record does: a second refund carrying an attempt's tag is recorded as a double
refund, and a status the ledger may follow (a refund settling) is recorded as news.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from refund_tui.core.backoff import read_with_backoff
from refund_tui.core.ledger import Acknowledgement, Attempt
from refund_tui.core.models import Payment, ProviderError, ProviderName, Refund
from refund_tui.core.money import Money
from refund_tui.core.service import RefundService


class FindingKind(StrEnum):
    MISSING_IN_LEDGER = "missing_in_ledger"  # a refund at the provider no attempt explains
    DOUBLE_REFUND = "double_refund"  # a second refund carrying one attempt's tag or key
    MISSING_AT_PROVIDER = "missing_at_provider"  # the ledger says money moved; the record shows none
    STATUS_MISMATCH = "status_mismatch"  # both sides know the refund, disagree on its fate
    AMOUNT_MISMATCH = "amount_mismatch"  # both sides know the refund, disagree on its amount


@dataclass(frozen=True, slots=True)
class Side:
    """One side's view of a refund."""

    reference: str | None
    amount: Money
    status: str
    at: datetime | None

    @classmethod
    def of_attempt(cls, attempt: Attempt) -> Side:
        return cls(attempt.provider_reference, attempt.amount, attempt.status.value, attempt.updated_at)

    @classmethod
    def of_refund(cls, refund: Refund) -> Side:
        return cls(refund.reference, refund.amount, refund.status.value, refund.updated_at or refund.created_at)

    def record(self) -> dict[str, object]:
        return {
            "reference": self.reference,
            "amount": self.amount.plain(),
            "currency": self.amount.currency,
            "status": self.status,
            "at": self.at.isoformat() if self.at else None,
        }


@dataclass(frozen=True, slots=True)
class Finding:
    kind: FindingKind
    provider: ProviderName
    payment_reference: str
    attempt_id: str | None
    ledger: Side | None
    at_provider: Side | None
    detail: str
    acknowledged: Acknowledgement | None = None

    @property
    def finding_id(self) -> str:
        """The same disagreement has the same id in every run (for acknowledging it)."""
        parts = (self.kind, self.provider, self.payment_reference, self.attempt_id or "",
                 self.at_provider.reference if self.at_provider else "")  # fmt: skip
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]

    def record(self) -> dict[str, object]:
        return {
            "id": self.finding_id,
            "kind": self.kind.value,
            "provider": self.provider.value,
            "payment_reference": self.payment_reference,
            "attempt_id": self.attempt_id,
            "ledger": self.ledger.record() if self.ledger else None,
            "provider_record": self.at_provider.record() if self.at_provider else None,
            "detail": self.detail,
            "acknowledged": None if self.acknowledged is None else {
                "note": self.acknowledged.note, "at": self.acknowledged.at.isoformat(),
                "by": self.acknowledged.operator,
            },
        }  # fmt: skip


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    payments_checked: int = 0
    #: (provider, payment reference, why) for records that could not be read.
    unreadable: list[tuple[ProviderName, str, str]] = field(default_factory=list)
    #: Attempts whose status the ledger learnt from the records.
    updated: int = 0

    def open_findings(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.acknowledged is None]

    def headline(self) -> str:
        """"12 payments checked: 2 findings (1 acknowledged)"."""
        checked, open_count = self.payments_checked, len(self.open_findings())
        acked = len(self.findings) - open_count
        return (
            f"{checked} payment{'s' * (checked != 1)} checked: {open_count} finding{'s' * (open_count != 1)}"
            + (f" ({acked} acknowledged)" if acked else "")
        )


@dataclass
class ReadProgress:
    total: int
    done: int = 0
    started: float = field(default_factory=time.monotonic)


async def reconcile(
    service: RefundService,
    *,
    since: datetime | None = None,
    provider: ProviderName | None = None,
    concurrency: int = 8,
    on_progress: Callable[[ReadProgress], None] = lambda progress: None,
) -> Report:
    """Check every payment with an attempt made since ``since`` (of ``provider``)."""
    touched = sorted({(a.provider, a.payment_reference) for a in await service.db.attempts(since=since, provider=provider)})
    report = Report()
    progress = ReadProgress(total=len(touched))
    gate = asyncio.Semaphore(concurrency)

    async def check(key: tuple[ProviderName, str]) -> None:
        async with gate:
            try:
                payment = await read_with_backoff(lambda: service.provider(key[0]).get_payment(key[1]))
            except ProviderError as error:
                report.unreadable.append((*key, error.message))
            else:
                report.payments_checked += 1
                findings, updated = await _compare(service, payment)
                report.findings += findings
                report.updated += updated
        progress.done += 1
        on_progress(progress)

    await asyncio.gather(*map(check, touched))
    acks = await service.db.acknowledgements()
    report.findings = sorted(
        (dataclasses.replace(f, acknowledged=acks.get(f.finding_id)) for f in report.findings),
        key=lambda f: (f.provider, f.payment_reference, f.kind, f.attempt_id or ""),
    )
    return report


async def _compare(service: RefundService, payment: Payment) -> tuple[list[Finding], int]:
    """The findings on one payment record, and how many attempts the ledger brought up to date
    (the ledger is read and written through its thread, off the loop)."""
    attempts = await service.db.attempts(provider=payment.provider, payment_reference=payment.reference)
    client = service.provider(payment.provider)
    findings: list[Finding] = []
    explained: set[str] = set()
    updated = 0

    def finding(kind: FindingKind, attempt: Attempt | None, refund: Refund | None, detail: str) -> None:
        findings.append(Finding(
            kind, payment.provider, payment.reference, attempt.attempt_id if attempt else None,
            Side.of_attempt(attempt) if attempt else None, Side.of_refund(refund) if refund else None,
            detail,
        ))  # fmt: skip

    for attempt in attempts:
        ours = await service.outcomes.watch(attempt, payment)  # records a second execution, once
        tagged = client.tagged_refunds(payment, attempt.request)
        explained.update(refund.reference for refund in tagged)
        for second in tagged:
            if ours is not None and second.reference != ours.reference:
                finding(FindingKind.DOUBLE_REFUND, attempt, second,
                        f"{second.reference} carries the tag [{attempt.request.external_reference}] of "
                        f"the attempt whose refund is {ours.reference}: the customer was paid twice")  # fmt: skip
        if ours is None:
            if attempt.provider_reference and attempt.status.holds_balance:
                finding(FindingKind.MISSING_AT_PROVIDER, attempt, None,
                        f"the ledger records refund {attempt.provider_reference} ({attempt.status}); "
                        "the payment record shows no refund with that reference or tag")  # fmt: skip
            continue
        explained.add(ours.reference)
        if ours.amount != attempt.amount:
            finding(FindingKind.AMOUNT_MISMATCH, attempt, ours,
                    f"the ledger sent {attempt.amount.format()}, the provider shows {ours.amount.format()}")  # fmt: skip
        if ours.status is not attempt.status:
            if await service.outcomes.record(attempt, ours, "reconcile", note="found on the payment record by reconciliation"):
                updated += 1
            elif attempt.status.is_terminal or ours.status.is_terminal:  # else both still in flight
                finding(FindingKind.STATUS_MISMATCH, attempt, ours,
                        f"the ledger says {attempt.status}, the provider says {ours.status}")  # fmt: skip
    for refund in payment.refunds:
        if refund.reference not in explained:
            finding(FindingKind.MISSING_IN_LEDGER, None, refund,
                    f"{refund.reference} ({refund.amount.format()}, {refund.status}) matches no attempt: "
                    "made outside refund-tui, or by another ledger")  # fmt: skip
    return findings, updated
