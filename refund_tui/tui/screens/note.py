"""A short text an operator must give before an action is recorded (a note, a reason)."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from refund_tui.tui.keys import bindings
from refund_tui.tui.widgets.footer import KeyFooter


class NoteScreen(ModalScreen[str]):
    """``prompt`` says what the note is about; dismissed with the note ("" when cancelled)."""

    BINDINGS = bindings("confirm")
    DEFAULT_CSS = """
    NoteScreen { align: center middle; }
    NoteScreen #note-box { width: 76; height: auto; border: thick $accent; padding: 0 1; }
    """

    def __init__(self, prompt: str, placeholder: str) -> None:
        super().__init__()
        self.prompt = prompt
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical(id="note-box"):
            yield Static(self.prompt, markup=False)
            yield Input(placeholder=self.placeholder, compact=True, id="note")
        yield KeyFooter()

    @on(Input.Submitted, "#note")
    def _noted(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss("")
