"""Keys as a terminal sends them over SSH: an ``esc`` followed at once by a key is two keys.

Without the kitty keyboard protocol, alt+key reaches an application as ESC then the key, and
so does an ``esc`` followed at once by a key: over SSH both often arrive in one packet, and
Textual then reads them as one key whatever its escape delay: ``alt+x``, ``ctrl+left`` for
ESC b, or a bare ``?`` for ESC ? — the ``esc`` is lost, so ``esc b`` would type into a field
instead of leaving it. The console binds nothing to alt, so its parser reads ESC followed by
a printable character as the two keys the operator most likely pressed. (Word moves in a
field are ctrl+left / ctrl+right, which terminals send as their own sequences.)

Textual 8.2.8's Linux driver builds its parser from its module's ``XTermParser``;
``escape_safe`` points that at ``EscapeSafeParser``. The tmux test of the real console
(tests/test_tui_tmux.py) fails if a Textual upgrade stops that from working.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from textual import events
from textual._xterm_parser import XTermParser
from textual.driver import Driver

ESC = "\x1b"
#: Characters that, after ESC, start a sequence from the terminal (CSI, SS3, OSC, DCS, APC, ST).
INTRODUCERS = frozenset("[O]P_\\")


def _escape_then_key(character: str) -> bool:
    return len(character) == 1 and character.isprintable() and character not in INTRODUCERS


class EscapeSafeParser(XTermParser):
    """Reads ESC + a printable character as escape, then that character's key."""

    def _sequence_to_key_events(self, sequence: str, alt: bool = False) -> Iterable[events.Key]:
        if alt and _escape_then_key(sequence):  # ESC + key, reissued after the escape delay
            character = sequence
        elif len(sequence) == 2 and sequence[0] == ESC and _escape_then_key(sequence[1]):
            character = sequence[1]  # ESC + key in one read (ESC b would read as ctrl+left)
        else:
            yield from super()._sequence_to_key_events(sequence, alt)
            return
        yield events.Key("escape", ESC)
        yield from super()._sequence_to_key_events(character)


def escape_safe(driver_class: type[Driver]) -> type[Driver]:
    """``driver_class``, its module's parser made escape-safe (a no-op for drivers without one)."""
    module = sys.modules[driver_class.__module__]
    if getattr(module, "XTermParser", None) is XTermParser:
        module.XTermParser = EscapeSafeParser
    return driver_class
