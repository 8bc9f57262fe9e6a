"""Form fields that keep the keys typed into them.

A printable key typed while a field has the focus belongs to the field, never to the
console's single-letter keys (``b``, ``k``, ``l``, ``?``...): an operator typing a URL into
the wrong field must not be thrown onto another screen. One exception: ``?`` in an empty
reference field opens the help, so help is one key away on the first screen.
"""

from __future__ import annotations

from textual import events
from textual.widgets import Input, Select


class ReferenceField(Input):
    """The lookup's reference field: ``?`` while it is empty opens the help."""

    def check_consume_key(self, key: str, character: str | None) -> bool:
        if character == "?" and not self.value:
            return False
        return super().check_consume_key(key, character)

    async def _on_key(self, event: events.Key) -> None:
        if event.character == "?" and not self.value:
            event.prevent_default()  # not typed: it bubbles on to the console's keys


class FieldSelect(Select):
    """A Select that keeps printable keys: typing opens its list, whose type-to-search takes
    the following keys."""

    def check_consume_key(self, key: str, character: str | None = None) -> bool:
        return character is not None and character.isprintable()

    async def _on_key(self, event: events.Key) -> None:
        if event.is_printable and not self.expanded:
            event.stop()
            event.prevent_default()
            self.action_show_overlay()
