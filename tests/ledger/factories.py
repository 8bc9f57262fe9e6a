"""Builders for ledger tests: attempts, notices, and the adapters they run against."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from refund_tui.core.ledger import BatchRow, Ledger, NewAttempt, Operator
from refund_tui.core.models import ProviderName, RefundStatus
from refund_tui.core.money import Money
from refund_tui.core.provider import Notice, RefundRequest

OPERATOR = Operator(name="ama", uid=1001, hostname="ops-1", ssh_client="10.0.0.5:52314")


def xof(minor: int) -> Money:
    return Money(minor, "XOF")


def new_attempt(
    amount: Money,
    payment: str = "tr_1",
    provider: ProviderName = ProviderName.NOVASEND,
    retry_of: str | None = None,
    batch_row: BatchRow | None = None,
) -> NewAttempt:
    external = f"rtui-{uuid.uuid4().hex[:12]}"
    body = json.dumps(
        {"amount": amount.wire_number(), "reason": "Duplicate charge", "externalReference": external}
    )
    return NewAttempt(
        profile="sandbox",
        environment="sandbox",
        provider=provider,
        payment_reference=payment,
        amount=amount,
        phone="+2250755550101",
        country_id=None,
        reason="Duplicate charge",
        webhook_url=None,
        request=RefundRequest(
            provider=provider,
            payment_reference=payment,
            method="POST",
            path=f"/v1/payin/{payment}/refund",
            body=body,
            idempotency_key=str(uuid.uuid4()),
            external_reference=external,
            amount=amount,
        ),
        operator=OPERATOR,
        retry_of=retry_of,
        batch_row=batch_row,
    )


def record(ledger: Ledger, minor: int, limit: int = 10_000, **kwargs) -> str:
    attempt = ledger.record_attempt(
        new_attempt(xof(minor), **kwargs), limit=xof(limit), known_references=()
    )
    return attempt.attempt_id


def notice(
    status: RefundStatus | None,
    *,
    reference: str | None = None,
    tag: str | None = None,
    identity: str | None = None,
    provider: ProviderName = ProviderName.NOVASEND,
) -> Notice:
    return Notice(
        provider, identity or f"evt_{uuid.uuid4().hex[:10]}", "refund.updated", reference,
        "tr_1", status, "wallet closed" if status is RefundStatus.FAILED else None, tag,
    )  # fmt: skip


@dataclass(frozen=True)
class LedgerSpec:
    """How to open one ledger again, from any process: an SQLite path or a PostgreSQL schema."""

    kind: str
    location: str
    schema: str | None = None

    def open(self) -> Ledger:
        if self.kind == "sqlite":
            from refund_tui.ledgers.sqlite import SqliteLedger

            return SqliteLedger(self.location)
        from refund_tui.ledgers.postgres import PostgresLedger

        return PostgresLedger(self.location, schema=self.schema, pool_size=1)
