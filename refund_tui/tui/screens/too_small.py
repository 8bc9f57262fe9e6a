"""Shown instead of everything else while the terminal is smaller than the console needs."""

from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.geometry import Size
from textual.screen import ModalScreen
from textual.widgets import Static

MIN_WIDTH = 80
MIN_HEIGHT = 24


class TooSmallScreen(ModalScreen[None]):
    """Says how big the terminal must be and how big it is; the app pops it when it grows."""

    DEFAULT_CSS = """
    TooSmallScreen { align: center middle; background: $background; }
    TooSmallScreen > Static { width: auto; height: auto; padding: 0 1; }
    """

    def compose(self) -> ComposeResult:
        yield Static(id="size-message")

    def on_mount(self) -> None:
        self._describe(self.app.size)

    def on_resize(self, event: events.Resize) -> None:
        self._describe(event.size)

    def _describe(self, size: Size) -> None:
        width, height = size
        self.query_one("#size-message", Static).update(
            f"The terminal is too small: {width}x{height}.\n"
            f"refund-tui needs at least {MIN_WIDTH}x{MIN_HEIGHT}.\n"
            "Enlarge the window (or reduce the font size)."
        )
