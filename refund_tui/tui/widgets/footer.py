"""The footer every screen ends with: Textual's, rebuilt only when the keys it shows change."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.widgets import Footer

if TYPE_CHECKING:
    from textual.screen import Screen


class KeyFooter(Footer):
    """Textual's ``Footer`` rebuilds all its keys on every bindings signal (each focus move
    sends one, and a screen's opening several). This one rebuilds once for the signals sent
    before the next refresh, and only when a key, its label or its state has changed: on
    the first screen that keeps two rebuilds off the first paint."""

    _shown: tuple[object, ...] | None = None
    _rebuild_due = False

    def bindings_changed(self, screen: Screen) -> None:
        self._bindings_ready = True
        if not screen.app.app_focus or self._rebuild_due:
            return
        if self.is_attached and screen is self.screen:
            self._rebuild_due = True
            self.call_after_refresh(self._rebuild_if_changed)

    async def _rebuild_if_changed(self) -> None:
        self._rebuild_due = False
        if not self.is_attached:  # its screen closed meanwhile
            return
        shown = self._keys_shown()
        if shown != self._shown:
            self._shown = shown
            await self.recompose()

    def _keys_shown(self) -> tuple[object, ...]:
        """Everything ``Footer.compose`` reads from the bindings."""
        display = self.app.get_key_display
        return tuple(
            (binding.key, display(binding), binding.description, binding.action, binding.show,
             binding.group, enabled, tooltip, binding.tooltip)
            for _, binding, enabled, tooltip in self.screen.active_bindings.values()
        )  # fmt: skip
