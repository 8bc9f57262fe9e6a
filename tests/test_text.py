"""``printable``: nothing that steers a terminal or hides text survives; printable text does."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refund_tui.core.text import is_printable, printable

#: Every character that may never reach a terminal from outside.
FORBIDDEN_CATEGORIES = {"Cc", "Cf", "Cs"}
#: The attacks issue 10 names: a title change (OSC), a colour (CSI), a carriage return, bidi.
ATTACKS = {
    "\x1b]0;PWNED\x07": "",
    "\x1b]0;PWNED\x1b\\": "",
    "\x1b[31mred\x1b[0m": "red",
    "paid\rrefunded": "paid refunded",
    "abc\u202edcba": "abcdcba",
    "\u2066isolated\u2069": "isolated",
    "\x9b31mC1 CSI": "C1 CSI",
    "\x9d0;title\x9cafter": "after",
    "\x1bPdevice control\x1b\\": "",
    "bell\x07 and\x08 backspace\x7f": "bell and backspace",
    "zero\u200bwidth\ufeff": "zerowidth",
    "two\nlines\ttab": "two lines tab",
    "\u3164": "",
    "unterminated \x1b]0;title": "unterminated 0;title",
    "dangling \x1b": "dangling ",
}
#: Hostile-looking text: escape introducers and payloads mixed with ordinary characters.
hostile = st.lists(
    st.one_of(
        st.text(max_size=8),
        st.sampled_from(["\x1b", "\x1b[", "\x1b]", "\x07", "\x1b\\", "\x9b", "\x9d", "\x9c", "\r"]),
        st.sampled_from(list(ATTACKS)),
    ),
    max_size=12,
).map("".join)
#: Ordinary printable text: letters, digits, punctuation, symbols, spaces of any script.
ordinary = st.text(
    st.characters(categories=("L", "M", "N", "P", "S", "Zs"), exclude_characters="\u115f\u1160\u3164\uffa0")
)


@pytest.mark.parametrize(("raw", "shown"), ATTACKS.items())
def test_each_named_attack_is_removed(raw, shown):
    assert printable(raw) == shown
    assert not is_printable(raw)


@given(hostile)
def test_no_control_escape_or_format_character_survives(text):
    shown = printable(text)
    assert not {unicodedata.category(char) for char in shown} & FORBIDDEN_CATEGORIES
    assert len(shown) <= len(text)


@given(st.text())
def test_any_text_comes_out_clean_and_cleaning_twice_changes_nothing(text):
    shown = printable(text)
    assert not {unicodedata.category(char) for char in shown} & FORBIDDEN_CATEGORIES
    assert printable(shown) == shown
    assert is_printable(shown)


@given(ordinary)
def test_printable_text_is_left_alone(text):
    assert printable(text) == text
    assert is_printable(text)


def test_names_in_any_script_and_emoji_are_kept():
    for name in ("Kwame Mensah", "Adjoa Ɔsei", "Aïcha Koné", "محمد", "张伟", "Zoë 👍🏾"):
        assert printable(name) == name
