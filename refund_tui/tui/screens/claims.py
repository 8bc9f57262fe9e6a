"""Triage as a team in the console: claim a refund ("I'm on it"), release it, take over
someone else's claim (asked first), and add notes. The same keys on the board and in details.

What is recorded, and by whom, is the ledger's (``Ledger.claim``, ``release``, ``add_note``):
a claim someone took meanwhile is refused there, never overwritten by a stale screen.
"""

from __future__ import annotations

from datetime import UTC

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from refund_tui.core.ledger import Attempt, AttemptNotFound, ClaimHeld, LedgerError, TriageEntry, whoami
from refund_tui.core.text import printable
from refund_tui.tui.keys import bindings
from refund_tui.tui.screens.note import NoteScreen
from refund_tui.tui.widgets.footer import KeyFooter


def claim_words(claim: TriageEntry) -> str:
    """"kofi since 10:02 UTC (kofi@oncall-2 via 10.0.0.9:52314)", terminal-safe."""
    return printable(f"{claim.who} since {claim.at.astimezone(UTC):%H:%M} UTC ({claim.operator})")


class TakeOverScreen(ModalScreen[bool]):
    """Someone else is on this refund: take it over (both names are kept) or leave it."""

    BINDINGS = bindings("take_over")
    DEFAULT_CSS = """
    TakeOverScreen { align: center middle; }
    TakeOverScreen #take-over-box { width: 76; height: auto; border: thick $warning; padding: 0 1; }
    """

    def __init__(self, attempt: Attempt, claim: TriageEntry) -> None:
        super().__init__()
        self.attempt = attempt
        self.claim = claim

    def compose(self) -> ComposeResult:
        with Vertical(id="take-over-box"):
            yield Static(
                Text(
                    f"On refund {self.attempt.attempt_id[:8]} of "
                    f"{printable(self.attempt.payment_reference)}: {claim_words(self.claim)}.\n"
                    "Take it over? The ledger keeps both names. enter: take over, esc: leave it."
                )
            )
        yield KeyFooter()

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)


class TriageKeys:
    """The claim and note actions of a screen that shows refunds; it says which refund and
    claim its keys act on (``triage_target``)."""

    def triage_target(self) -> tuple[Attempt, TriageEntry | None] | None:
        raise NotImplementedError

    def action_claim(self) -> None:
        target = self.triage_target()
        if target is None:
            return
        attempt, claim = target
        service = self.app.service
        if claim is None:
            self.record_claim(attempt.attempt_id, release=False, take_over=False)
        elif claim.who == whoami(service.ledger, service.operator):
            self.record_claim(attempt.attempt_id, release=True, take_over=False)
        else:
            self.app.push_screen(
                TakeOverScreen(attempt, claim),
                lambda yes: yes and self.record_claim(attempt.attempt_id, release=False, take_over=True),
            )

    def action_note(self) -> None:
        target = self.triage_target()
        if target is None:
            return
        attempt, _ = target
        prompt = (f"Note on refund {attempt.attempt_id[:8]} of {printable(attempt.payment_reference)}: "
                  "what you found or did (kept in its timeline for everyone, with your name).")  # fmt: skip
        self.app.push_screen(
            NoteScreen(prompt, "e.g. called the customer: wallet closed, asked for another"),
            lambda text: text and self.record_note(attempt.attempt_id, text),
        )

    @work(exit_on_error=False, group="triage-write", description="record claim")
    async def record_claim(self, attempt_id: str, *, release: bool, take_over: bool) -> None:
        service = self.app.service
        try:
            if release:
                entry = await service.db.release(attempt_id, service.operator)
                said = "Released: nobody is on it now" if entry else "Nobody was on it"
            else:
                entry = await service.db.claim(attempt_id, service.operator, take_over=take_over)
                over = f", taken over from {printable(entry.took_over)}" if entry.took_over else ""
                said = f"You are on refund {attempt_id[:8]}{over}: everyone sees it"
        except ClaimHeld as held:
            self.notify(f"{printable(str(held))} (o again to take it over)", severity="warning",
                        timeout=8, markup=False)  # fmt: skip
        except (LedgerError, AttemptNotFound) as error:
            self.notify(f"Not recorded: {printable(str(error))}", severity="error", timeout=10, markup=False)
            return
        else:
            self.notify(said, timeout=4, markup=False)
        self.app.tracked_changes()

    @work(exit_on_error=False, group="triage-write", description="record note")
    async def record_note(self, attempt_id: str, text: str) -> None:
        service = self.app.service
        try:
            await service.db.add_note(attempt_id, text, service.operator)
        except (LedgerError, AttemptNotFound, ValueError) as error:
            self.notify(f"Note not kept: {printable(str(error))}", severity="error", timeout=10, markup=False)
            return
        self.notify("Note kept in the refund's timeline", timeout=4)
        self.app.tracked_changes()
