"""Text from outside made safe to show: no terminal control, nothing invisible that deceives.

A provider, a notification, the ledger or a file may hold escape sequences that retitle or
recolour the operator's terminal (``ESC ] 0 ; ... BEL``, ``ESC [ 31 m``), a carriage return
that overwrites what was printed, or bidi controls (U+202E) that make ``gpj.exe`` read as
``exe.jpg``. ``printable`` removes all of them before a terminal sees the text.
"""

from __future__ import annotations

import re
import unicodedata

#: Whole escape sequences, 7-bit (ESC ...) and 8-bit (C1), removed with their parameters:
#: CSI ... final byte; OSC, DCS, SOS, PM, APC strings up to their terminator (BEL or ST);
#: any other ESC sequence (intermediates, then a final byte).
_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f]).*?(?:\x07|\x1b\\|\x9c)"
    r"|\x1b[ -/]*[0-~]",
    re.DOTALL,
)
#: Line and column breaks: each becomes one space, so words on either side stay apart.
_BREAKS = frozenset("\t\n\v\f\r\x1c\x1d\x1e\x85\u2028\u2029")
#: Control (Cc), format (Cf: bidi embeddings, overrides and isolates, zero-width
#: characters, BOM, tags) and lone surrogates (Cs).
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})
#: Letters that render as nothing (Hangul fillers), a classic way to fake a blank name.
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")


def printable(text: str) -> str:
    """``text`` without escape sequences, control, format or blank characters; line breaks
    and tabs become spaces. Printable text (any script, emoji, spaces) is left as it is."""
    if text.isprintable() and _BLANK_LETTERS.isdisjoint(text):
        return text  # the common case (no control, format or separator but space), fast
    return "".join(_kept(char) for char in _SEQUENCE.sub("", text))


def printable_lines(text: str) -> str:
    """``printable`` line by line: the line breaks of ``text`` are kept (for multi-line
    blocks of our own making, such as an indented JSON body, whose values came from outside)."""
    return "\n".join(printable(line) for line in text.split("\n"))


def is_printable(text: str) -> bool:
    """True when ``printable`` would leave ``text`` unchanged."""
    return printable(text) == text


def _kept(char: str) -> str:
    if char in _BREAKS:
        return " "
    if char in _BLANK_LETTERS or unicodedata.category(char) in _INVISIBLE_CATEGORIES:
        return ""
    return char
