"""The one registry of key bindings.

The footer, the help screen, the command palette and user keymaps all read it: every
action is a `Binding` with a stable `id` ("scope.name") and a description. Screens take
their bindings with `bindings(scope)`; a user keymap (`config.keys`) maps those ids to other
keys. Nothing destructive sits on a bare `esc`, an `alt+` key or a ctrl-letter: sending a
refund always needs a typed confirmation, so no key here sends money by itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from textual.binding import Binding

SCOPE_TITLES: Mapping[str, str] = MappingProxyType(
    {
        "app": "Everywhere",
        "lookup": "Payment lookup",
        "refund": "Refund form",
        "confirm": "Confirmation",
        "take_over": "Taking over a claim",
        "board": "Status board",
        "details": "Refund details",
        "triage": "Bulk triage",
        "batch": "Batch from a CSV file",
        "reconcile": "Reconciliation",
        "approvals": "Approvals (team ledger)",
        "credentials": "Credentials",
        "help": "Help",
    }
)


def _key(binding_id: str, key: str, action: str, description: str, tooltip: str, **options) -> Binding:
    """A registry entry: the description is the footer label, the tooltip the help text."""
    return Binding(key, action, description, tooltip=tooltip, id=binding_id, **options)


_REGISTRY: Mapping[str, tuple[Binding, ...]] = MappingProxyType(
    {
        "app": (
            _key("app.lookup", "l", "show_lookup", "Lookup", "The first screen: look up a payment, or pick one from its lists", show=False),
            _key("app.board", "b", "show_board", "Board", "Live status board of every refund", show=False),
            _key("app.batch", "B", "show_batch", "Batch", "Refunds from a CSV file, every row checked first", key_display="B", show=False),
            _key("app.reconcile", "C", "show_reconcile", "Reconcile", "Compare the providers' records with the ledger", key_display="C", show=False),
            _key("app.approvals", "A", "show_approvals", "Approvals", "Refunds awaiting your approval (team ledger)", key_display="A", show=False),
            _key("app.credentials", "k", "show_credentials", "Credentials", "Credential sources and the keyring in use", show=False),
            _key("app.help", "question_mark,f1", "show_help", "Help", "Every key, by screen (f1 also works in a text field)"),
            _key("app.palette", "ctrl+p", "command_palette", "Commands", "Command palette", show=False),
            _key("app.quit", "ctrl+q", "quit", "Quit", "Quit refund-tui", priority=True),
        ),
        "lookup": (
            _key("lookup.refund", "r", "refund", "Refund", "Refund the payment on screen"),
            _key("lookup.provider", "f2", "next_provider", "Provider", "Switch provider (Vesicash / Novasend)"),
            _key("lookup.reference", "slash", "focus_reference", "Reference", "Type another payment reference", key_display="/", show=False),
            _key("lookup.leave", "escape", "leave_reference", "Keys", "Leave the reference field so single-letter keys work", show=False),
            _key("lookup.list", "down", "focus_list", "List", "From the reference field down into the list below", key_display="down", show=False),
        ),
        "refund": (
            _key("refund.submit", "ctrl+s", "submit", "Review", "Review and confirm the refund (nothing is sent yet)"),
            _key("refund.back", "escape", "back", "Cancel", "Leave the form without refunding"),
        ),
        "confirm": (
            _key("confirm.cancel", "escape", "cancel", "Cancel", "Back to the form; nothing is sent"),
        ),
        "take_over": (
            _key("take_over.confirm", "enter", "confirm", "Take over", "Take the claim over (both names are kept)", key_display="enter"),
            _key("take_over.cancel", "escape", "cancel", "Leave it", "Leave the claim with whoever holds it"),
        ),
        "board": (
            _key("board.open", "enter", "open_details", "Details", "Details of the selected refund", key_display="enter"),
            _key("board.filter", "slash", "filter", "Filter", "Filter by reference, phone or reason", key_display="/"),
            _key("board.clear_filter", "escape", "close_filter", "Clear filter", "Clear and close the filter", show=False),
            _key("board.failed", "f", "quick_filter('failed')", "Failed", "Show failed refunds only"),
            _key("board.in_flight", "i", "quick_filter('in_flight')", "In flight", "Show refunds still in flight", show=False),
            _key("board.all", "a", "quick_filter('all')", "All", "Show every refund"),
            _key("board.sort", "s", "cycle_sort", "Sort", "Next sort order: time, amount, status", show=False),
            _key("board.pause", "p", "toggle_pause", "Pause", "Pause or resume live updates"),
            _key("board.refresh", "ctrl+r", "refresh_now", "Refresh", "Poll the providers now", show=False),
            _key("board.select", "space", "toggle_select", "Select", "Select or unselect the highlighted failed or unknown refund"),
            _key("board.extend_down", "shift+down", "extend(1)", "Extend", "Select this refund and the next one down", show=False),
            _key("board.extend_up", "shift+up", "extend(-1)", "Extend up", "Select this refund and the next one up", show=False),
            _key("board.select_all", "asterisk", "select_all", "Select all", "Select every failed or unknown refund shown (again: none)", key_display="*", show=False),
            _key("board.retry", "t", "bulk('retry')", "Retry", "Retry the selected failed refunds (typed count to confirm)", show=False),
            _key("board.resolve", "v", "bulk('resolve')", "Resolve", "Resolve the selected unknown refunds with their providers", show=False),
            _key("board.mine", "w", "toggle_mine", "Mine", "Show only the refunds I made (again: everyone's); by:NAME in / shows someone's", show=False),
            _key("board.claim", "o", "claim", "On it", "Claim the highlighted refund (I'm on it), release your claim, or take someone's over", show=False),
        ),
        "triage": (
            _key("triage.back", "escape", "back", "Back", "Back to the board (once every result is in)"),
        ),
        "batch": (
            _key("batch.send", "ctrl+s", "send", "Send", "Send the ready rows of the checked file (typed count first)"),
            _key("batch.resend", "R", "resend", "Resend", "Resend the file's Vesicash rows of unknown outcome the evidence allows (typed count)", key_display="R"),
            _key("batch.back", "escape", "back", "Back", "Leave this screen (not while sending)"),
        ),
        "reconcile": (
            _key("reconcile.ack", "a", "acknowledge", "Acknowledge", "Record a note on the highlighted finding"),
            _key("reconcile.run", "ctrl+r", "run", "Again", "Read every record again"),
            _key("reconcile.back", "escape", "back", "Back", "Leave this screen"),
        ),
        "approvals": (
            _key("approvals.approve", "enter", "approve", "Approve", "Approve and send the highlighted refund (typed amount)", key_display="enter"),
            _key("approvals.deny", "d", "deny", "Deny", "Deny the highlighted refund (a reason is required)"),
            _key("approvals.refresh", "ctrl+r", "refresh_now", "Refresh", "Read the queue again", show=False),
            _key("approvals.back", "escape", "back", "Back", "Leave this screen"),
        ),
        "details": (
            _key("details.copy", "c", "copy_reference", "Copy ref", "Copy the provider reference to your clipboard"),
            _key("details.retry", "t", "retry", "Retry", "Retry a failed refund (new key, new confirmation)"),
            _key("details.resolve", "v", "resolve", "Resolve", "Resolve an unknown outcome with the provider"),
            _key("details.resend", "R", "resend", "Resend", "Decide to resend a Vesicash refund of unknown outcome, after the evidence", key_display="R"),
            _key("details.claim", "o", "claim", "On it", "Claim this refund (I'm on it), release your claim, or take someone's over", show=False),
            _key("details.note", "n", "note", "Note", "Add a note to this refund's timeline (kept, with your name)", show=False),
            _key("details.back", "escape", "back", "Back", "Back to the board"),
        ),
        "credentials": (
            _key("credentials.refresh", "ctrl+r", "refresh_now", "Refresh", "Read the credentials again"),
            _key("credentials.back", "escape", "back", "Back", "Close this screen"),
        ),
        "help": (
            _key("help.back", "escape", "back", "Back", "Close this screen"),
        ),
    }
)  # fmt: skip


def bindings(scope: str) -> list[Binding]:
    """The bindings of one scope, ready for a screen's `BINDINGS`."""
    try:
        return list(_REGISTRY[scope])
    except KeyError:
        raise KeyError(f"no key scope {scope!r}; scopes are {', '.join(_REGISTRY)}") from None


def registry() -> Mapping[str, tuple[Binding, ...]]:
    """Every scope with its bindings, in display order (read-only)."""
    return _REGISTRY


def binding(binding_id: str) -> Binding:
    """The binding with this id, e.g. "board.filter"."""
    for scoped in _REGISTRY.values():
        for candidate in scoped:
            if candidate.id == binding_id:
                return candidate
    raise KeyError(f"no binding with id {binding_id!r}")


def binding_ids() -> set[str]:
    """Every id a user keymap may name."""
    return {each.id for scoped in _REGISTRY.values() for each in scoped if each.id}
