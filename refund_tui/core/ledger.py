"""The ledger port: what the service, console, CLI and webhook receiver may ask of a ledger.

Two adapters implement it (``refund_tui.ledgers``): an SQLite file for one operator, and
PostgreSQL for a team. Whatever must be atomic is one method (``record_attempt``,
``add_event``, ``claim_send``, ``receive_notice``), so no connection or transaction ever
crosses the port, and adapters raise only the exceptions defined here (plus ValueError for
a programming error). The port is synchronous: code on an event loop calls it through a
thread (``ThreadedLedger``, Textual thread workers, Starlette's thread pool), never
directly, so a slow network database cannot freeze the console. A synchronous port keeps
one implementation of the rules for both adapters (SQLite has no async driver worth its
cost) and suits the CLI and the receiver, which are threaded already.

Invariants every adapter keeps: an attempt is recorded, with its exact request, in the same
transaction that checks the payment's cap (serialised per payment across processes and
hosts) and before any byte is sent; attempts, events and notices are append-only, and every
append-only record is a link of the ledger's hash chain (``verify_chain``); a status never
moves backwards (``ledger_rules``); a notice is applied at most once.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from refund_tui.core.models import ProviderName, RefundStatus
from refund_tui.core.money import Money
from refund_tui.core.operator import Operator
from refund_tui.core.provider import Notice, RefundRequest

__all__ = [
    "AUDIT_FIELDS",
    "Acknowledgement",
    "Attempt",
    "AttemptNotFound",
    "BatchRow",
    "BatchRowRecorded",
    "CapExceeded",
    "ChainBreak",
    "ChainVerdict",
    "ChangeWatch",
    "Event",
    "Ledger",
    "LedgerError",
    "LedgerLost",
    "NewAttempt",
    "NoticeOutcome",
    "Operator",
    "RefundInFlight",
    "StoredNotice",
    "ThreadedLedger",
]

#: Shortest attempt-id prefix ``Ledger.get`` accepts.
MIN_PREFIX = 4
UNRESOLVED = (RefundStatus.PENDING, RefundStatus.PROCESSING, RefundStatus.UNKNOWN)


class LedgerError(Exception):
    """The ledger cannot be opened or used; the message says why and what to do."""


class LedgerLost(LedgerError):
    """The ledger is no longer the one this process writes to (a file deleted or replaced
    while open): what was just written may be recorded nowhere."""


class AttemptNotFound(KeyError):
    """No attempt matches the id, id prefix or provider reference."""

    def __str__(self) -> str:
        return str(self.args[0])


class CapExceeded(Exception):
    """Recording the attempt would refund more than the payment has left."""

    def __init__(self, remaining: Money, payment_reference: str) -> None:
        super().__init__(
            f"only {remaining.format()} left to refund on {payment_reference} "
            "once refunds in flight are counted"
        )
        self.remaining = remaining
        self.payment_reference = payment_reference


class BatchRowRecorded(Exception):
    """This row of a batch file already has its attempt: it is never sent again."""

    def __init__(self, attempt_id: str) -> None:
        super().__init__(f"this batch row was already recorded as attempt {attempt_id[:8]}")
        self.attempt_id = attempt_id


@dataclass(frozen=True, slots=True)
class BatchRow:
    """A row of a batch file: the hash of the file's rows and the row's number (from 1)."""

    batch_id: str
    row: int


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """An operator's note on a reconciliation finding."""

    finding_id: str
    note: str
    at: datetime
    operator: str


class RefundInFlight(CapExceeded):
    """Another refund of the payment has no known outcome yet: a new one could pay twice."""

    def __init__(self, attempt_id: str, payment_reference: str, currency: str) -> None:
        Exception.__init__(
            self,
            f"refund {attempt_id[:8]} of {payment_reference} is still in flight with no known "
            "outcome: resolve it first (refund-tui recover, or its details); a new refund now "
            "could pay the customer twice",
        )
        self.remaining = Money.zero(currency)
        self.payment_reference = payment_reference
        self.attempt_id = attempt_id


@dataclass(frozen=True, slots=True)
class NewAttempt:
    """A refund attempt about to be recorded (and then sent)."""

    profile: str
    environment: str
    provider: ProviderName
    payment_reference: str
    amount: Money
    phone: str
    country_id: str | None
    reason: str
    webhook_url: str | None
    request: RefundRequest
    operator: Operator
    retry_of: str | None = None
    batch_row: BatchRow | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    """A recorded attempt with its current state.

    ``recorded_by`` is the database role that recorded it, set by the database itself
    (PostgreSQL); None on an SQLite ledger, where only the client-reported ``operator`` exists.
    """

    attempt_id: str
    created_at: datetime
    profile: str
    environment: str
    provider: ProviderName
    payment_reference: str
    amount: Money
    phone: str
    country_id: str | None
    reason: str
    webhook_url: str | None
    request: RefundRequest
    operator: Operator
    pid: int
    app_version: str
    retry_of: str | None
    status: RefundStatus
    provider_reference: str | None
    failure_reason: str | None
    raw_code: str | None
    raw_message: str | None
    updated_at: datetime
    flagged: bool
    #: Provider references of further refunds carrying this attempt's tag (paid twice).
    double_refunds: tuple[str, ...] = ()
    recorded_by: str | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """One status change of an attempt."""

    at: datetime
    status: RefundStatus
    source: str
    provider_reference: str | None
    failure_reason: str | None
    raw_code: str | None
    raw_message: str | None
    http_status: int | None
    note: str | None
    recorded_by: str | None = None


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """Where the ledger's hash chain stops holding: the link, the row (table and key; the
    event id when it is an event) and a sentence saying what was found."""

    seq: int | None
    table: str
    key: str
    event_id: int | None
    message: str


@dataclass(frozen=True, slots=True)
class ChainVerdict:
    """What ``Ledger.verify_chain`` found: how many links hold, the newest one's hash, and
    the first break (None when the chain is intact)."""

    count: int
    head: str
    broken: ChainBreak | None


class NoticeOutcome(StrEnum):
    """What a notice did; the receiver answers it, ``refund-tui webhooks list`` shows it."""

    APPLIED = "applied"  # the attempt's state changed
    UNCHANGED = "unchanged"  # the attempt already knew
    STALE = "stale"  # late or out of order: it would move the refund backwards
    KEPT = "kept"  # no attempt matches (yet): kept for reconciliation
    IGNORED = "ignored"  # not about a refund's state
    CONFLICT = "conflict"  # contradicts the attempt's outcome or tag: the attempt is flagged
    DUPLICATE = "duplicate"  # received before: nothing done, nothing stored


@dataclass(frozen=True, slots=True)
class StoredNotice:
    notice: Notice
    received_at: datetime
    outcome: NoticeOutcome
    attempt_id: str | None


#: Keys of each ``Ledger.audit_rows`` dict, in export order (``amount`` is in major units).
#: Who recorded the event (PCI DSS 10.2.2): ``recorded_by`` is the authenticated role (the
#: database login on a team ledger, the OS account on SQLite); ``client_*`` the OS account,
#: host and SSH client of the process that recorded it (``operator_*`` are the attempt's
#: maker); ``outcome`` is "recorded" for a status change, else the decision's outcome.
#: ``chain_seq``, ``prev_hash`` and ``row_hash`` are the event's link in the hash chain.
AUDIT_FIELDS = (
    "event_id", "event_at", "status", "source", "provider_reference", "failure_reason",
    "raw_code", "raw_message", "http_status", "note", "attempt_id", "attempt_created_at",
    "profile", "environment", "provider", "payment_reference", "amount", "amount_minor",
    "currency", "phone", "country_id", "reason", "webhook_url", "idempotency_key",
    "external_reference", "request_method", "request_path", "request_body", "operator_name",
    "operator_uid", "hostname", "ssh_client", "pid", "app_version", "retry_of", "recorded_by",
    "outcome", "client_account", "client_host", "client_ssh", "chain_seq", "prev_hash", "row_hash",
)  # fmt: skip


class ChangeWatch(Protocol):
    """Tells, cheaply, whether anyone committed to the ledger since the last look.

    Never raises: a ledger it cannot read counts as unchanged (the periodic refresh reports it).
    """

    def changed(self) -> bool: ...

    def close(self) -> None: ...


class Ledger(Protocol):
    """The append-only record of refund attempts, their status changes and provider notices.

    Safe to share between threads. ``location`` names it for people (a path, or a database
    URL with any password masked).
    """

    location: str

    @property
    def ledger_id(self) -> str:
        """This ledger's random identity, written once when it was created."""
        ...

    def close(self) -> None: ...

    def change_watch(self) -> ChangeWatch: ...

    # -- writing: each call is one transaction --------------------------------------------

    def record_attempt(
        self, new: NewAttempt, *, limit: Money, known_references: Collection[str]
    ) -> Attempt:
        """Check the cap and record the attempt with its first event, durably, in one go.

        ``limit`` is what the provider says is left to refund; ``known_references`` are the
        refunds the provider already reports, so they are not counted twice. Raises
        CapExceeded when this attempt plus the ledger's refunds in flight would exceed it;
        RefundInFlight while another attempt of the payment has no provider reference yet
        (being sent, or of unknown outcome): it may have paid already; BatchRowRecorded when
        ``new.batch_row`` already has its attempt.
        """
        ...

    def add_event(
        self, attempt_id: str, status: RefundStatus, source: str, **details: str | int | None
    ) -> bool:
        """Append a status change; False (nothing written) when it tells nothing new or
        contradicts what is known (``ledger_rules``). ``details``: provider_reference,
        failure_reason, raw_code, raw_message, http_status, note."""
        ...

    def claim_send(
        self, attempt_id: str, lease: timedelta, note: str = "resending the stored request",
        outcome: str | None = None,
    ) -> bool:  # fmt: skip
        """Claim the right to (re)send an attempt's stored request; False if it is settled or
        another send may still be executing (no 4xx answer and ``lease`` not over, by the
        ledger's clock). The claim is a "send" event (with ``note`` and, for an operator's
        decision, its ``outcome``), so two processes never both resend."""
        ...

    def record_decision(self, attempt_id: str, outcome: str, note: str) -> None:
        """Record an operator's decision about an attempt that changes nothing (a refused
        resend): a "decision" event with its outcome, the attempt's status unchanged."""
        ...

    def record_double_refund(self, attempt_id: str, reference: str, second: str, note: str) -> bool:
        """Record that ``second`` is another execution of the attempt whose refund is
        ``reference``, and flag the attempt; False (nothing written) when already known."""
        ...

    def flag(self, attempt_id: str, note: str) -> None:
        """Mark the attempt for manual reconciliation; its status stays as it is."""
        ...

    def receive_notice(self, notice: Notice, body: str) -> NoticeOutcome:
        """Record a verified notice (``body`` verbatim) and apply it to its attempt, at most
        once however many receivers get it."""
        ...

    def reconcile_notices(self) -> int:
        """Apply kept notices that an attempt now matches, oldest first; how many were."""
        ...

    def acknowledge_finding(
        self, finding_id: str, *, kind: str, provider: ProviderName, payment_reference: str,
        note: str, operator: Operator,
    ) -> Acknowledgement:  # fmt: skip
        """Record an operator's note on a reconciliation finding (kept, never changed);
        ValueError when the note is blank."""
        ...

    # -- reading ---------------------------------------------------------------------------

    def get(self, key: str) -> Attempt:
        """The attempt with this id, unique id prefix, or provider reference."""
        ...

    def events(self, attempt_id: str) -> list[Event]:
        """The attempt's status changes, oldest first."""
        ...

    def attempts(
        self,
        *,
        statuses: Collection[RefundStatus] | None = None,
        provider: ProviderName | None = None,
        payment_reference: str | None = None,
        since: datetime | None = None,
        retry_of: str | None = None,
        limit: int | None = None,
    ) -> list[Attempt]:
        """Attempts with their current state, newest first, optionally filtered."""
        ...

    def unresolved(self) -> list[Attempt]:
        """Attempts still pending, processing or unknown, oldest first."""
        ...

    def counts(self) -> dict[RefundStatus, int]:
        """How many attempts are in each status (every status present, zero included); a
        failed attempt that was retried no longer counts as failed."""
        ...

    def retried_ids(self) -> set[str]:
        """Ids of the attempts a later attempt retried."""
        ...

    def payments(self) -> list[tuple[ProviderName, str]]:
        """Every (provider, payment reference) the ledger has an attempt for."""
        ...

    def needing_attention(
        self, stuck_before: Mapping[ProviderName, datetime], limit: int
    ) -> tuple[list[Attempt], int]:
        """The newest ``limit`` attempts an operator must look at, and how many there are:
        failed (unless retried), unknown, reversed or flagged, and pending or processing since
        before their provider's ``stuck_before``."""
        ...

    def audit_rows(self, since: datetime | None = None) -> Iterator[dict]:
        """One flat dict per event (keys: AUDIT_FIELDS) joined with its attempt, oldest first."""
        ...

    def double_refund_count(self) -> int:
        """How many attempts were executed more than once by their provider."""
        ...

    def notice_conflicts(self, attempt_id: str) -> list[StoredNotice]:
        """Notices that contradicted what the attempt records (it was flagged for them)."""
        ...

    def recent_notices(self, *, kept_only: bool = False, limit: int = 50) -> list[StoredNotice]:
        """The newest notices first; ``kept_only``: those still waiting for an attempt."""
        ...

    def acknowledgements(self) -> dict[str, Acknowledgement]:
        """Finding id -> its newest acknowledgement."""
        ...

    def batch_attempts(self, batch_id: str) -> dict[int, str]:
        """Row number -> attempt id, for every row of the batch already recorded."""
        ...

    def verify_chain(self) -> ChainVerdict:
        """Recompute the hash chain over every append-only record (``ledgers.chain``), from
        one consistent snapshot, and report the first break."""
        ...


class ThreadedLedger:
    """The port for code on an event loop: each call runs in a worker thread and is awaited,
    so a slow or unreachable database delays the caller, never the loop (the console)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    async def get(self, key: str) -> Attempt:
        return await asyncio.to_thread(self.ledger.get, key)

    async def events(self, attempt_id: str) -> list[Event]:
        return await asyncio.to_thread(self.ledger.events, attempt_id)

    async def attempts(self, **filters: Any) -> list[Attempt]:
        return await asyncio.to_thread(functools.partial(self.ledger.attempts, **filters))

    async def unresolved(self) -> list[Attempt]:
        return await asyncio.to_thread(self.ledger.unresolved)

    async def record_attempt(
        self, new: NewAttempt, *, limit: Money, known_references: Collection[str]
    ) -> Attempt:
        return await asyncio.to_thread(
            functools.partial(self.ledger.record_attempt, new, limit=limit, known_references=known_references)
        )

    async def add_event(
        self, attempt_id: str, status: RefundStatus, source: str, **details: str | int | None
    ) -> bool:
        return await asyncio.to_thread(
            functools.partial(self.ledger.add_event, attempt_id, status, source, **details)
        )

    async def claim_send(
        self, attempt_id: str, lease: timedelta, note: str = "resending the stored request",
        outcome: str | None = None,
    ) -> bool:  # fmt: skip
        return await asyncio.to_thread(self.ledger.claim_send, attempt_id, lease, note, outcome)

    async def record_decision(self, attempt_id: str, outcome: str, note: str) -> None:
        await asyncio.to_thread(self.ledger.record_decision, attempt_id, outcome, note)

    async def record_double_refund(self, attempt_id: str, reference: str, second: str, note: str) -> bool:
        return await asyncio.to_thread(self.ledger.record_double_refund, attempt_id, reference, second, note)

    async def flag(self, attempt_id: str, note: str) -> None:
        await asyncio.to_thread(self.ledger.flag, attempt_id, note)

    async def notice_conflicts(self, attempt_id: str) -> list[StoredNotice]:
        return await asyncio.to_thread(self.ledger.notice_conflicts, attempt_id)

    async def batch_attempts(self, batch_id: str) -> dict[int, str]:
        return await asyncio.to_thread(self.ledger.batch_attempts, batch_id)

    async def acknowledgements(self) -> dict[str, Acknowledgement]:
        return await asyncio.to_thread(self.ledger.acknowledgements)

    async def acknowledge_finding(self, finding_id: str, **details: Any) -> Acknowledgement:
        return await asyncio.to_thread(functools.partial(self.ledger.acknowledge_finding, finding_id, **details))
