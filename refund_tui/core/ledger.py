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
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from refund_tui.core.approvals import ApprovalRules, Decision
from refund_tui.core.models import ProviderName, RefundStatus
from refund_tui.core.money import Money
from refund_tui.core.operator import Operator
from refund_tui.core.provider import Notice, RefundRequest

__all__ = [
    "AUDIT_FIELDS",
    "Acknowledgement",
    "Attempt",
    "ApprovalRefused",
    "AttemptNotFound",
    "BatchRow",
    "BatchRowRecorded",
    "CapExceeded",
    "ChainBreak",
    "ChainVerdict",
    "ChangeWatch",
    "ClaimHeld",
    "DailyLimitExceeded",
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
    "TriageAction",
    "TriageEntry",
    "claim_in_force",
    "made_by",
    "whoami",
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


class ApprovalRefused(LedgerError):
    """The team ledger refused what its approval rules forbid (the message says which rule)."""


class DailyLimitExceeded(CapExceeded):
    """Recording the attempt would take its role over the daily limit in this currency."""

    def __init__(self, role: str, limit: Money, left: Money) -> None:
        Exception.__init__(
            self,
            f"over the daily limit of role {role}: {limit.format()} a day (UTC), "
            f"{left.format()} left today",
        )
        self.remaining = left
        self.payment_reference = ""
        self.limit = limit
        self.role = role


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


class TriageAction(StrEnum):
    """What an on-call engineer recorded about an attempt (never a change of its status)."""

    CLAIM = "claim"  # "I'm on it"
    RELEASE = "release"  # nobody is on it any more
    NOTE = "note"


#: Longest note the ledger keeps.
NOTE_LIMIT = 2000


@dataclass(frozen=True, slots=True)
class TriageEntry:
    """A claim, release or note on an attempt, kept for good.

    ``recorded_by`` is the database role (PostgreSQL, set by the database); ``operator`` is
    what the client reported. ``took_over`` names whose claim a claim or release ended when
    it was not the author's own (PostgreSQL: found by the database, not the client).
    """

    attempt_id: str
    at: datetime
    action: TriageAction
    operator: Operator
    note: str | None = None
    took_over: str | None = None
    recorded_by: str | None = None

    @property
    def who(self) -> str:
        """Whom the ledger knows as the author: the database role, else the OS account."""
        return self.recorded_by or self.operator.name


class ClaimHeld(Exception):
    """Someone else is on this attempt: taking it over must be asked for explicitly."""

    def __init__(self, claim: TriageEntry) -> None:
        super().__init__(
            f"{claim.who} has been on refund {claim.attempt_id[:8]} since "
            f"{claim.at.astimezone(UTC):%Y-%m-%d %H:%M} UTC: take it over explicitly"
        )
        self.claim = claim


def claim_in_force(log: Iterable[TriageEntry]) -> TriageEntry | None:
    """The claim on an attempt now, from its triage log (oldest first): its newest claim or
    release, when a claim."""
    held = None
    for entry in log:
        if entry.action is not TriageAction.NOTE:
            held = entry if entry.action is TriageAction.CLAIM else None
    return held


def whoami(ledger: Ledger, operator: Operator) -> str:
    """How the ledger names the person at this keyboard: the database role it records as
    (PostgreSQL), else the OS account (SQLite), as ``made_by`` and ``TriageEntry.who`` do."""
    return ledger.role or operator.name


def made_by(attempt: Attempt) -> str:
    """Who made the refund, as the ledger knows them: the database role that recorded it on a
    team ledger, else the OS account the client reported."""
    return attempt.recorded_by or attempt.operator.name


#: Keys of each ``Ledger.audit_rows`` dict, in export order (``amount`` is in major units).
#: Who recorded the event (PCI DSS 10.2.2): ``recorded_by`` is the authenticated role (the
#: database login on a team ledger, the OS account on SQLite); ``client_*`` the OS account,
#: host and SSH client of the process that recorded it (``operator_*`` are the attempt's
#: maker); ``outcome`` is "recorded" for a status change, else the decision's outcome.
#: ``chain_seq``, ``prev_hash`` and ``row_hash`` are the event's link in the hash chain.
#: Claims, releases and notes are rows too: ``source`` is their action, ``status`` empty,
#: ``note`` their text (or whose claim they took over), ``client_*`` their author's.
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
    ``lost`` says why while the ledger cannot be reached at all (a team ledger's server gone),
    else None; the watch reconnects by itself and then reports a change (read it all again).
    """

    lost: str | None

    def changed(self) -> bool: ...

    def close(self) -> None: ...


class Ledger(Protocol):
    """The append-only record of refund attempts, their status changes and provider notices.

    Safe to share between threads. ``location`` names it for people (a path, or a database
    URL with any password masked).
    """

    location: str
    #: The database role this ledger records as (PostgreSQL), None where the database knows
    #: no one (SQLite: the OS account is who you are).
    role: str | None

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

    def claim(self, attempt_id: str, operator: Operator, *, take_over: bool = False) -> TriageEntry:
        """Record that ``operator`` is on the attempt and return the claim now in force (the
        existing one, unwritten, when it is already theirs). ClaimHeld when someone else is
        on it, unless ``take_over``; AttemptNotFound when there is no such attempt."""
        ...

    def release(
        self, attempt_id: str, operator: Operator, *, take_over: bool = False
    ) -> TriageEntry | None:
        """Record that nobody is on the attempt any more; None (nothing written) when nobody
        was. ClaimHeld when the claim is someone else's, unless ``take_over``."""
        ...

    def add_note(self, attempt_id: str, note: str, operator: Operator) -> TriageEntry:
        """Keep an operator's note on the attempt; ValueError when blank or over NOTE_LIMIT."""
        ...

    # -- approvals (a team ledger's; an SQLite ledger has no rules and refuses decisions) ----

    def approval_rules(self) -> ApprovalRules:
        """The rules the ledger enforces (empty when it has none)."""
        ...

    def may_approve(self) -> bool:
        """Whether this ledger's role may approve or deny other roles' refunds."""
        ...

    def awaiting_approval(self, *, mine: bool = False) -> list[Attempt]:
        """Refunds awaiting approval, oldest first: those this role may decide (none unless it
        holds the approver role; never its own), or with ``mine`` its own. Lapsed requests are
        first recorded as cancelled."""
        ...

    def decide(self, attempt_id: str, decision: Decision, reason: str, operator: Operator) -> Attempt:
        """Record a decision on a refund awaiting approval; an approval also claims the right
        to send it (a "send" event), in the same transaction, so it is sent once. Raises
        ApprovalRefused when the rules forbid it (own refund, no approver role, lapsed, not
        awaiting approval)."""
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
        made_by: str | None = None,
        limit: int | None = None,
    ) -> list[Attempt]:
        """Attempts with their current state, newest first, optionally filtered (``made_by``:
        as ``core.ledger.made_by`` names the author)."""
        ...

    def unresolved(self) -> list[Attempt]:
        """Attempts still pending, processing or unknown, oldest first."""
        ...

    def counts(self, made_by: str | None = None) -> dict[RefundStatus, int]:
        """How many attempts are in each status (every status present, zero included); a
        failed attempt that was retried no longer counts as failed. ``made_by``: only the
        attempts it made (as ``core.ledger.made_by`` names the author)."""
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

    def triage_log(self, attempt_id: str) -> list[TriageEntry]:
        """The attempt's claims, releases and notes, oldest first."""
        ...

    def claims(self) -> dict[str, TriageEntry]:
        """Attempt id -> the claim in force on it, for every attempt someone is on."""
        ...

    def audit_rows(self, since: datetime | None = None) -> Iterator[dict]:
        """One flat dict per event, claim, release and note (keys: AUDIT_FIELDS) joined with
        its attempt, oldest first."""
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

    async def claim(self, attempt_id: str, operator: Operator, *, take_over: bool = False) -> TriageEntry:
        return await asyncio.to_thread(functools.partial(self.ledger.claim, attempt_id, operator, take_over=take_over))

    async def release(
        self, attempt_id: str, operator: Operator, *, take_over: bool = False
    ) -> TriageEntry | None:
        return await asyncio.to_thread(functools.partial(self.ledger.release, attempt_id, operator, take_over=take_over))

    async def add_note(self, attempt_id: str, note: str, operator: Operator) -> TriageEntry:
        return await asyncio.to_thread(self.ledger.add_note, attempt_id, note, operator)

    async def acknowledgements(self) -> dict[str, Acknowledgement]:
        return await asyncio.to_thread(self.ledger.acknowledgements)

    async def awaiting_approval(self, *, mine: bool = False) -> list[Attempt]:
        return await asyncio.to_thread(functools.partial(self.ledger.awaiting_approval, mine=mine))

    async def decide(self, attempt_id: str, decision: Decision, reason: str, operator: Operator) -> Attempt:
        return await asyncio.to_thread(self.ledger.decide, attempt_id, decision, reason, operator)

    async def acknowledge_finding(self, finding_id: str, **details: Any) -> Acknowledgement:
        return await asyncio.to_thread(functools.partial(self.ledger.acknowledge_finding, finding_id, **details))
