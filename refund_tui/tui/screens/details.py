"""Everything about one refund attempt: its timeline (status changes, claims and notes), the
request as sent, the provider's raw error, who sent it from where, who is on it, and the
actions that follow (copy, retry, resolve, claim, note).

The request shown is the one stored in the ledger; it never holds credentials, and nothing
here reads them.
"""

from __future__ import annotations

import asyncio
import heapq
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.dom import DOMNode
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from refund_tui.core.ledger import Attempt, Event, Ledger, TriageEntry, claim_in_force
from refund_tui.core.models import RefundStatus
from refund_tui.core.notices import NoticeInbox
from refund_tui.core.service import PaymentView, ResendEvidence
from refund_tui.core.text import printable, printable_lines
from refund_tui.tui.keys import bindings
from refund_tui.tui.messages import LedgerChanged, describe_error
from refund_tui.tui.screens.claims import TriageKeys, claim_words
from refund_tui.tui.widgets.banner import Banner
from refund_tui.tui.widgets.footer import KeyFooter
from refund_tui.tui.widgets.home import age
from refund_tui.tui.widgets.status import attempt_status, status_label, status_text

#: What an operator reads when a worker of this screen fails, by worker group.
FAILURES = {
    "details-load": "Could not read the refund",
    "details-resolve": "Could not resolve the refund",
    "details-retry": "Could not retry the refund",
    "details-resend": "Could not read the evidence for a resend",
}


@dataclass(frozen=True, slots=True)
class Details:
    """One read of an attempt with its history and the attempts linked to it."""

    attempt: Attempt
    events: list[Event]
    retry_of: Attempt | None
    retries: list[Attempt]
    #: A provider notification contradicted this attempt's outcome: no retry until reconciled.
    contradicted: bool = False
    #: Claims, releases and notes, oldest first.
    triage: tuple[TriageEntry, ...] = ()

    @property
    def claim(self) -> TriageEntry | None:
        return claim_in_force(self.triage)


def read_details(ledger: Ledger, attempt_id: str) -> Details:
    """Read an attempt and its links from the ledger (blocking: run it in a thread)."""
    attempt = ledger.get(attempt_id)
    siblings = ledger.attempts(
        provider=attempt.provider, payment_reference=attempt.payment_reference
    )
    return Details(
        attempt=attempt,
        events=ledger.events(attempt.attempt_id),
        retry_of=ledger.get(attempt.retry_of) if attempt.retry_of else None,
        retries=[other for other in siblings if other.retry_of == attempt.attempt_id],
        contradicted=bool(NoticeInbox(ledger).conflicts(attempt.attempt_id)),
        triage=tuple(ledger.triage_log(attempt.attempt_id)),
    )


def still_running(node: DOMNode, group: str) -> bool:
    """True while ``node`` has a worker of ``group`` running.

    A timer tick skips its refresh then: an exclusive worker would cancel a slow poll of
    many refunds over and over, and the screen would never refresh.
    """
    return any(w.node is node and w.group == group and not w.is_finished for w in node.workers)


def _when(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def _fields(title: str, rows: list[tuple[str, RenderableType | str | None]]) -> Table:
    """A titled two-column block of label/value pairs; empty values are left out."""
    table = Table.grid(padding=(0, 2))
    table.title = title
    table.title_justify = "left"
    table.title_style = "bold"
    table.add_column(style="dim", no_wrap=True)
    table.add_column(overflow="fold")
    for label, value in rows:
        if value not in (None, ""):
            table.add_row(label, Text(printable(value)) if isinstance(value, str) else value)
    return table


def summary(details: Details) -> Table:
    attempt = details.attempt
    failure = Text(printable(attempt.failure_reason), style="bold red") if attempt.failure_reason else None
    claim = details.claim
    on_it = Text(claim_words(claim), style="bold") if claim else Text("nobody (o: I'm on it, n: a note)", style="dim")
    return _fields(
        "Summary",
        [
            ("Status", attempt_status(attempt)),
            ("Failure", failure),
            ("On it", on_it),
            ("Provider", attempt.provider.value),
            ("Payment", attempt.payment_reference),
            ("Amount", attempt.amount.format()),
            ("Phone", attempt.phone),
            ("Reason", attempt.reason),
            ("Provider ref", attempt.provider_reference or "none yet"),
            ("Attempt id", attempt.attempt_id),
            ("Created", _when(attempt.created_at)),
            ("Updated", _when(attempt.updated_at)),
            ("Webhook", attempt.webhook_url),
        ],
    )


@dataclass(frozen=True, slots=True)
class Waiting:
    """What ``what_now`` needs beyond the attempt: the provider's habits and the clock."""

    keyless: bool
    usual_settle: timedelta
    resend_from: datetime
    now: datetime


def what_now(attempt: Attempt, waiting: Waiting) -> Text | None:
    """What the operator is waiting for, until when, and can do now, for a refund that
    needs a human (paid twice, of unknown outcome, or stuck beyond the provider's usual time)."""
    provider = attempt.provider.value.title()
    if attempt.double_refunds:
        seconds = printable(", ".join(attempt.double_refunds))
        return Text(
            f"PAID TWICE: {provider} executed this refund again as {seconds} (it carries this "
            f"refund's tag). Recover the second payment from the customer, or ask {provider} "
            f"to reverse {seconds}.",
            style="bold",
        )
    if attempt.status.is_terminal:
        return None
    if attempt.provider_reference:
        taken = waiting.now - attempt.created_at
        if taken <= waiting.usual_settle:
            return None
        return Text(
            f"Stuck: {attempt.status} for {age(taken)}, while {provider} usually settles within "
            f"{age(waiting.usual_settle)}. It still holds {attempt.amount} of the payment. "
            f"Escalate to {provider} support with refund {attempt.provider_reference} on "
            f"payment {attempt.payment_reference}; tracking keeps reading it and shows the "
            "outcome here when it comes."
        )
    tag = attempt.request.external_reference
    if waiting.keyless:
        return Text(
            f"Outcome unknown: waiting for {provider}'s payment record to show a refund tagged "
            f"[{tag}]; it is read on every tracking round and settles this refund when it "
            f"does. {provider} takes no idempotency key, so this request is never resent "
            "automatically: a slow provider may still execute it. Do not refund this payment "
            "again. Press R to see the evidence; a resend can be offered from "
            f"{waiting.resend_from:%H:%M} UTC if the record still shows nothing. Unsure? Ask "
            "the provider about the tag."
        )
    return Text(
        f"Outcome unknown: resent unchanged with its idempotency key on every recovery "
        f"round ({provider} executes one key once). Press v to ask now."
    )


def provider_error(details: Details) -> Table | None:
    """The provider's own words for the latest error, if it gave any."""
    raw = next(
        (
            event
            for event in reversed(details.events)
            if event.raw_code or event.raw_message or event.http_status
        ),
        None,
    )
    if raw is None:
        return None
    return _fields(
        "Last provider error (raw)",
        [
            ("Code", raw.raw_code),
            ("Message", raw.raw_message),
            ("HTTP status", str(raw.http_status) if raw.http_status else None),
            ("At", _when(raw.at)),
        ],
    )


def _event_note(event: Event) -> str:
    parts = [event.note or ""]
    if event.failure_reason and event.failure_reason not in parts[0]:
        parts.append(event.failure_reason)
    if event.http_status or event.raw_code:
        parts.append(f"[{' '.join(str(x) for x in (event.http_status, event.raw_code) if x)}]")
    return " - ".join(part for part in parts if part)


def _triage_note(entry: TriageEntry) -> str:
    """Who, from where, and what: the note, or whose claim was taken over."""
    said = entry.note or (f"took over from {entry.took_over}" if entry.took_over else "")
    return f"{entry.who} ({entry.operator})" + (f": {said}" if said else "")


def timeline(events: list[Event], triage: tuple[TriageEntry, ...] = ()) -> Table:
    """Status changes and triage entries (claims, releases, notes) together, oldest first."""
    table = Table(
        title="Timeline",
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
        expand=True,
        pad_edge=False,
    )
    table.add_column("Time (UTC)", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    table.add_column("Source", no_wrap=True)
    table.add_column("Note", overflow="fold", ratio=1)
    changes = [(event.at, status_text(event.status), event.source, _event_note(event)) for event in events]
    notes = [(entry.at, Text("-", style="dim"), entry.action.value, _triage_note(entry)) for entry in triage]
    for at, status, source, note in heapq.merge(changes, notes, key=lambda row: row[0]):
        table.add_row(
            Text(f"{at.astimezone(UTC):%Y-%m-%d %H:%M:%S}"), status, Text(source), Text(printable(note))
        )
    return table


def pretty_body(body: str) -> str:
    """The stored JSON body, indented; as stored when it is not JSON."""
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        return body


def request_block(attempt: Attempt) -> Group:
    request = attempt.request
    fields = _fields(
        "Request as sent",
        [
            ("Call", f"{request.method} {request.path}"),
            ("Idempotency key", request.idempotency_key or "none (the provider takes no key)"),
            ("External ref", request.external_reference),
        ],
    )
    return Group(fields, Text(printable_lines(pretty_body(request.body))))


def _link(attempt: Attempt) -> Text:
    return Text.assemble(f"{attempt.attempt_id}  ", status_text(attempt.status))


def origin(details: Details) -> Table:
    attempt = details.attempt
    operator = attempt.operator
    return _fields(
        "Sent by",
        [
            ("Operator", f"{operator.name} (uid {operator.uid})"),
            ("Database login", attempt.recorded_by),
            ("Host", operator.hostname),
            ("SSH client", operator.ssh_client or "local session"),
            ("Profile", f"{attempt.profile} ({attempt.environment})"),
            ("App version", f"refund-tui {attempt.app_version} (pid {attempt.pid})"),
            ("Retry of", _link(details.retry_of) if details.retry_of else None),
            *(("Retried as", _link(retry)) for retry in details.retries),
        ],
    )


def resolve_outcome(before: RefundStatus, after: Attempt) -> tuple[str, str]:
    """A toast (text, severity) saying what resolving the attempt did."""
    label = status_label(after.status, flagged=after.flagged)
    if after.status is RefundStatus.FAILED:
        reason = after.failure_reason or "no reason given"
        return f"Resolved: the refund {label} - {reason}", "error"
    if after.status.is_terminal:
        return f"Resolved: the refund is {label}", "information"
    if after.flagged:
        return f"Not resolved: {label}; reconcile it with the provider by hand", "warning"
    if after.status == before:
        return f"Still {label}: the provider has no final answer yet; try again later", "warning"
    return f"Now {label}: the provider has the refund and it is settling", "information"


class DetailsScreen(TriageKeys, Screen):
    """One refund attempt in full."""

    BINDINGS = bindings("details")
    DEFAULT_CSS = """
    DetailsScreen #details-title { height: 1; text-style: bold; padding: 0 1; }
    DetailsScreen #details-body { height: 1fr; padding: 0 1; }
    DetailsScreen #details-body > Static { margin-bottom: 1; }
    """

    class Loaded(Message):
        def __init__(self, details: Details) -> None:
            super().__init__()
            self.details = details

    class Resolved(Message):
        def __init__(self, before: RefundStatus, attempt: Attempt) -> None:
            super().__init__()
            self.before = before
            self.attempt = attempt

    class RetryReady(Message):
        def __init__(self, view: PaymentView, failed: Attempt) -> None:
            super().__init__()
            self.view = view
            self.failed = failed

    class EvidenceRead(Message):
        def __init__(self, evidence: ResendEvidence) -> None:
            super().__init__()
            self.evidence = evidence

    def __init__(self, attempt_id: str) -> None:
        super().__init__()
        self.attempt_id = attempt_id
        self.details: Details | None = None
        self._timer: Timer

    def compose(self) -> ComposeResult:
        yield Banner()
        yield Static(Text(f"Refund {self.attempt_id}: loading..."), id="details-title")
        with VerticalScroll(id="details-body"):
            for part in ("summary", "next", "error", "timeline", "request", "origin"):
                yield Static(id=f"details-{part}")
        yield KeyFooter()

    def on_mount(self) -> None:
        self._timer = self.set_interval(self.app.refresh_interval, self._tick, pause=True)
        self.query_one("#details-body").focus()
        self.reload()

    def _tick(self) -> None:
        if not still_running(self, "details-load"):
            self.reload()

    @property
    def attempt(self) -> Attempt | None:
        return self.details.attempt if self.details else None

    def _waiting(self, details: Details) -> Waiting:
        attempt = details.attempt
        sends = [event.at for event in details.events if event.source in ("intent", "send")]
        service = self.app.service
        return Waiting(
            keyless=self._keyless,
            usual_settle=self.app.session.profile.usual_settle[attempt.provider],
            resend_from=sends[-1] + service.resend_quiet,
            now=self.app.clock(),
        )

    @property
    def _keyless(self) -> bool:
        """True when the attempt's provider takes no idempotency key (Vesicash)."""
        attempt = self.attempt
        return attempt is not None and not self.app.service.provider(attempt.provider).idempotent

    # -- reading ------------------------------------------------------------------------------

    @work(exclusive=True, exit_on_error=False, group="details-load", description="read refund")
    async def reload(self) -> None:
        """Read this attempt (the app polls the providers in the background)."""
        service = self.app.service
        details = await asyncio.to_thread(read_details, service.ledger, self.attempt_id)
        self.post_message(self.Loaded(details))

    @on(Loaded)
    def _show(self, message: Loaded) -> None:
        details = self.details = message.details
        attempt = details.attempt
        self.attempt_id = attempt.attempt_id
        title = Text.assemble(f"Refund {attempt.attempt_id}  ", attempt_status(attempt))
        if not attempt.status.is_terminal:
            title.append("  (refreshing)", style="dim")
        self.query_one("#details-title", Static).update(title)
        self.query_one("#details-summary", Static).update(summary(details))
        advice = what_now(attempt, self._waiting(details))
        next_step = self.query_one("#details-next", Static)
        next_step.display = advice is not None
        next_step.update(advice or "")
        error = self.query_one("#details-error", Static)
        raw = provider_error(details)
        error.display = raw is not None
        error.update(raw or "")
        self.query_one("#details-timeline", Static).update(timeline(details.events, details.triage))
        self.query_one("#details-request", Static).update(request_block(attempt))
        self.query_one("#details-origin", Static).update(origin(details))
        self._follow()
        self.refresh_bindings()

    def _follow(self) -> None:
        """Keep refreshing while the refund can still change and the screen is on top."""
        if self.attempt and not self.attempt.status.is_terminal and self.is_current:
            self._timer.resume()
        else:
            self._timer.pause()

    def on_screen_suspend(self) -> None:
        self._timer.pause()

    def on_screen_resume(self) -> None:
        if self.details is not None:
            self.reload()

    @on(LedgerChanged)
    def _ledger_changed(self) -> None:
        """Statuses changed (tracking, or another process such as the webhook receiver)."""
        if not still_running(self, "details-load"):
            self.reload()

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        if event.state is not WorkerState.ERROR or event.worker.group not in FAILURES:
            return
        problem = describe_error(event.worker.error)
        self.notify(
            f"{FAILURES[event.worker.group]}: {problem}", severity="error", timeout=8, markup=False
        )
        if self.details is None:
            self.query_one("#details-title", Static).update(
                Text(f"Refund {self.attempt_id}: {problem}", style="bold red")
            )

    # -- actions ------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        attempt = self.attempt
        if action == "retry":  # a retried failure keeps the key: action_retry says why not
            failed = attempt is not None and attempt.status is RefundStatus.FAILED
            return failed and not self.details.contradicted
        if action == "resolve":
            return attempt is not None and not attempt.status.is_terminal
        if action == "resend":
            open_ended = attempt is not None and not attempt.status.is_terminal
            return open_ended and attempt.provider_reference is None and self._keyless
        if action in ("copy_reference", "claim", "note"):
            return attempt is not None
        return True

    def action_copy_reference(self) -> None:
        attempt = self.attempt
        if attempt.provider_reference:
            what, text = "provider reference", attempt.provider_reference
        else:
            what, text = "attempt id (no provider reference yet)", attempt.attempt_id
        self.app.copy_to_clipboard(text)
        self.notify(f"Copied the {what} {printable(text)} to your clipboard", timeout=4, markup=False)

    def action_retry(self) -> None:
        if why := self._no_retry():
            self.notify(why, severity="warning", timeout=10, markup=False)
            return
        self.notify(
            f"Looking up {printable(self.attempt.payment_reference)} to retry the refund...",
            timeout=3,
            markup=False,
        )
        self.look_up_for_retry()

    def _no_retry(self) -> str | None:
        """Why this failure cannot be retried again, or None."""
        if not self.details.retries:
            return None
        retry = self.details.retries[0]
        return (
            f"Not retried again: this failure was already retried as {retry.attempt_id[:8]} "
            f"({retry.status.value}). A failure is retried once; open that attempt from the "
            "board to follow it, and retry it if it fails."
        )

    @work(exclusive=True, exit_on_error=False, group="details-retry", description="look up payment")
    async def look_up_for_retry(self) -> None:
        attempt = self.attempt
        service = self.app.service
        view = await service.lookup(attempt.provider, attempt.payment_reference)
        failed = await asyncio.to_thread(service.check_retry, view.payment, attempt.attempt_id)
        self.post_message(self.RetryReady(view, failed))

    @on(RetryReady)
    def _open_retry(self, message: RetryReady) -> None:
        self.app.open_refund(message.view, retry_of=message.failed)

    def action_resolve(self) -> None:
        provider = self.attempt.provider.value.title()
        if still_running(self, "details-resolve"):
            self.notify(f"Still waiting for {provider}'s answer...", timeout=3)
            return
        self.notify(f"Asking {provider} about the refund...", timeout=3)
        self.resolve()

    @work(exclusive=True, exit_on_error=False, group="details-resolve", description="resolve")
    async def resolve(self) -> None:
        before = self.attempt.status
        attempt = await self.app.service.refresh(self.attempt_id)
        self.post_message(self.Resolved(before, attempt))

    @on(Resolved)
    def _resolved(self, message: Resolved) -> None:
        text, severity = resolve_outcome(message.before, message.attempt)
        self.notify(printable(text), severity=severity, timeout=8, markup=False)
        self.app.post_message(LedgerChanged())
        self.reload()

    def action_resend(self) -> None:
        self.notify("Reading the payment record for the evidence...", timeout=3)
        self.read_evidence()

    @work(exclusive=True, exit_on_error=False, group="details-resend", description="evidence")
    async def read_evidence(self) -> None:
        evidence = await self.app.service.resend_evidence(self.attempt_id)
        self.post_message(self.EvidenceRead(evidence))

    @on(EvidenceRead)
    def _open_resend(self, message: EvidenceRead) -> None:
        from refund_tui.tui.screens.resend import ResendScreen

        self.app.push_screen(ResendScreen(message.evidence, live=self.app.session.profile.is_live))
        self.reload()

    def triage_target(self) -> tuple[Attempt, TriageEntry | None] | None:
        return None if self.details is None else (self.details.attempt, self.details.claim)

    def action_back(self) -> None:
        self.dismiss()
