"""RefundApp: the console shell. Opens the session, owns navigation, the banner and the keys.

The first screen paints before the session opens. The session is opened in a thread worker
afterwards, in two steps: the profile (config, operator, the ledger's counts) fills the banner
first; the providers (the simulator or the keyring, the clients) follow, and lookups wait for
them. Nothing heavy is imported on the first paint's path.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterable
from contextlib import closing
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from textual import events, work
from textual.app import App
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.worker import Worker, WorkerState, get_current_worker

from refund_tui.core.text import printable, printable_lines
from refund_tui.tui import keys
from refund_tui.tui.messages import LedgerChanged, RefundSubmitted, describe_error
from refund_tui.tui.screens.lookup import LookupScreen
from refund_tui.tui.screens.too_small import MIN_HEIGHT, MIN_WIDTH, TooSmallScreen
from refund_tui.tui.widgets.banner import BannerInfo

if TYPE_CHECKING:
    from refund_tui.config import Profile
    from refund_tui.core.ledger import Attempt, ChangeWatch, Ledger
    from refund_tui.core.operator import Operator
    from refund_tui.core.service import PaymentView, RefundService
    from refund_tui.session import Session


#: Never refresh faster than this (k9s's floor): operators over slow SSH links pay for redraws.
MIN_INTERVAL = 2.0
#: How often the console looks for ledger changes made by other processes (the receiver,
#: other operators): a change shows within this plus one board read. A look is cheap (a
#: socket already read, or SQLite's data_version) and repaints nothing unless changed; at
#: 0.5 s it was half of the team ledger's median change-to-screen time (docs/TEAM.md).
WATCH_INTERVAL = 0.1
#: The banner's note while the team ledger is lost mid-session.
LEDGER_LOST = "team ledger lost — reconnecting…"


def utcnow() -> datetime:
    return datetime.now(UTC)


def _board_screen() -> Screen:
    from refund_tui.tui.screens.board import BoardScreen

    return BoardScreen()


class SessionNotReady(RuntimeError):
    """The session is still opening, or could not be opened."""


def banner_counts(ledger: Ledger) -> tuple[int, int, int, int, int]:
    """The failed, unknown, reversed, paid-twice and to-approve counts the banner shows."""
    from refund_tui.core.models import RefundStatus

    counts = ledger.counts()
    failed, unknown, reversed_ = (
        counts[s] for s in (RefundStatus.FAILED, RefundStatus.UNKNOWN, RefundStatus.REVERSED)
    )
    # None waiting, none to approve: the approval queue is read (and lapsed) only when some wait.
    waiting = counts[RefundStatus.AWAITING_APPROVAL] and len(ledger.awaiting_approval())
    return failed, unknown, reversed_, ledger.double_refund_count(), waiting


def profile_banner(profile: Profile, operator: Operator, role: str | None = None) -> BannerInfo:
    """``role``: the database role a team ledger records this console's work as (who you
    are to the team), named first when it is not the OS account."""
    who = f"{operator.name}@{operator.hostname}"
    return BannerInfo(
        profile=profile.name,
        environment=profile.environment,
        refunds_enabled=profile.refunds_enabled,
        operator=f"{role} ({who})" if role and role != operator.name else who,
    )


class KeyCommands(Provider):
    """Command palette entries from the key registry: app actions plus the screen's own."""

    def _commands(self) -> Iterable[tuple[str, str, Callable[[], object]]]:
        app: RefundApp = self.app  # type: ignore[assignment]
        scoped = [(app, b) for b in keys.bindings("app") if b.id != "app.palette"]
        own = [b for b in type(self.screen).BINDINGS if isinstance(b, Binding) and b.id]
        scoped += [(self.screen, b) for b in own]
        for owner, binding in scoped:
            title = f"{binding.description} ({app.key_for(binding)})"
            yield title, binding.tooltip or binding.description, _runner(owner, binding.action)

    async def discover(self) -> Hits:
        for title, help_text, command in self._commands():
            yield DiscoveryHit(title, command, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, command in self._commands():
            if (score := matcher.match(title)) > 0:
                yield Hit(score, matcher.highlight(title), command, help=help_text)


def _runner(owner: App | Screen, action: str) -> Callable[[], object]:
    async def run() -> None:
        await owner.run_action(action)

    return run


class RefundApp(App[None]):
    """The refund console."""

    TITLE = "refund-tui"
    CSS_PATH = "app.tcss"
    BINDINGS = keys.bindings("app")
    COMMANDS = App.COMMANDS | {KeyCommands}
    MODES = {"lookup": LookupScreen, "board": _board_screen}
    DEFAULT_MODE = "lookup"

    class ProfileRead(Message):
        """The profile is known (the first step of opening the session): fill the banner."""

        def __init__(self, banner: BannerInfo, keymap: dict[str, str]) -> None:
            super().__init__()
            self.banner = banner
            self.keymap = keymap

    banner_info: reactive[BannerInfo] = reactive(BannerInfo.opening(None), init=False)
    #: True once the session is open (providers connected): lookups and refunds can run.
    connected: reactive[bool] = reactive(False, init=False)
    #: Why the session could not be opened (the lookup screen shows it), else None.
    session_problem: reactive[str | None] = reactive(None, init=False)
    #: Why the team ledger cannot be reached mid-session (its watch reconnects), else None.
    ledger_lost: reactive[str | None] = reactive(None, init=False)

    def __init__(
        self,
        profile_name: str | None = None,
        *,
        session: Session | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__()
        self.profile_name = profile_name
        self.session: Session | None = session
        self.clock: Callable[[], datetime] = clock or utcnow
        self._owns_session = session is None
        self._quit_warned: set[Worker] = set()
        self._user_keys: dict[str, str] = {}
        self._ledger_watch: ChangeWatch | None = None
        self.set_reactive(RefundApp.banner_info, BannerInfo.opening(profile_name))

    def get_driver_class(self):
        from refund_tui.tui.terminal import escape_safe

        return escape_safe(super().get_driver_class())

    async def on_event(self, event: events.Event) -> None:
        """A paste reaches the focused field without terminal controls, and a key bound in
        the focused chain takes effect before the keys behind it.

        Textual hands each key to the widget focused when it is dispatched, and runs a key's
        binding only once the key has bubbled up from that widget. In a burst (keys arriving
        together over SSH) a later key can then overtake a bound one: characters typed after
        backspaces were inserted before the backspaces ran, and the ``b`` of ``esc b`` was
        typed into the field the ``esc`` was leaving. So a key bound here runs its binding at
        once, as Textual would after the bubbling (``_check_bindings``, Textual 8.2.8; the
        tmux tests catch a change). A key the focused widget takes itself (a field's
        printable keys) and a key no binding handles go the usual way.
        """
        if isinstance(event, events.Paste) and not event.is_forwarded:
            event = events.Paste(printable_lines(event.text))
        elif isinstance(event, events.Key) and not event.is_forwarded:
            focused = self.focused
            taken = focused is not None and focused.check_consume_key(event.key, event.character)
            if not taken:
                self.app_focus = True
                if await self._check_bindings(event.key, priority=True):
                    return
                if await self._check_bindings(event.key):
                    return
        await super().on_event(event)

    # -- the session ------------------------------------------------------------------------

    @property
    def service(self) -> RefundService:
        """The refund engine; SessionNotReady until the session is open."""
        if self.session is None:
            raise SessionNotReady(self.banner_info.note or "the session is not open")
        return self.session.service

    def on_mount(self) -> None:
        self._guard_size()
        if self.session is not None:
            self._session_ready()
        else:
            self.call_after_refresh(self._open_session)

    @work(thread=True, exit_on_error=False, group="session", name="open-session")
    def _open_session(self) -> Session | None:
        from refund_tui.config import load_config
        from refund_tui.core.operator import Operator
        from refund_tui.ledgers import open_ledger

        config = load_config()
        profile = config.profile(self.profile_name)
        with closing(open_ledger(profile)) as ledger:
            banner = profile_banner(profile, Operator.current(), ledger.role)
            banner = banner.with_counts(*banner_counts(ledger))
        self.post_message(self.ProfileRead(banner, config.keys))

        from refund_tui.core.phone import warm_up
        from refund_tui.session import Session

        warm_up()  # the carrier data, here rather than on the refund form's first keystroke
        self._unlock_keyring()
        session = Session.open(self.profile_name, config=config)
        if get_current_worker().is_cancelled:
            asyncio.run(session.aclose())
            return None
        self._ledger_watch = session.ledger.change_watch()  # connects: here, not on the loop
        return session

    def on_refund_app_profile_read(self, message: ProfileRead) -> None:
        if self.session is None and self.session_problem is None:
            self.banner_info = message.banner
            self._apply_keymap(message.keymap)

    def _unlock_keyring(self) -> None:
        """If the profile needs the encrypted keyring and it is locked, ask its passphrase on
        the terminal, the console suspended meanwhile: never from this thread, never blind."""
        from refund_tui.commands.credentials import store_to_unlock

        store = store_to_unlock(self.profile_name)
        if store is not None:
            self.call_from_thread(self._ask_passphrase, store)

    def _ask_passphrase(self, store: object) -> None:
        import click
        from textual.app import SuspendNotSupported

        from refund_tui.commands.credentials import ask_passphrase
        from refund_tui.session import SessionError

        refused = None
        try:
            with self.suspend():
                try:
                    ask_passphrase(store)
                except (click.ClickException, click.Abort) as error:
                    refused = str(error) or "the keyring passphrase was not given"
        except SuspendNotSupported:
            return  # no terminal to ask on: the session reports the keyring as locked
        if refused is not None:
            raise SessionError(refused)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.name == "open-session":
            if event.state is WorkerState.SUCCESS and worker.result is not None:
                self.session = worker.result
                self._session_ready()
            elif event.state is WorkerState.ERROR:
                profile = self.banner_info.profile
                self.banner_info = BannerInfo(profile=profile, note="could not open")
                self.session_problem = describe_error(worker.error)
        elif worker.group == "tracking" and event.state is WorkerState.ERROR:
            self.notify(f"Status tracking: {describe_error(worker.error)}", severity="warning", markup=False)
        elif worker.name == "ledger-counts" and event.state is WorkerState.SUCCESS:
            self.banner_info = self.banner_info.with_counts(*worker.result)

    def _session_ready(self) -> None:
        session = self.session
        if self.banner_info.environment is None:  # a session given, not opened here
            self.banner_info = profile_banner(session.profile, session.service.operator, session.ledger.role)
            self._apply_keymap(session.config.keys)
        self.set_interval(self.refresh_interval, self._tick_tracking, name="tracking")
        if self._ledger_watch is None:  # a session handed in: its watch is a local file's
            self._ledger_watch = session.ledger.change_watch()
        self.set_interval(WATCH_INTERVAL, self._watch_ledger, name="ledger-watch")
        self.connected = True
        self.refresh_counts()
        self.recover_at_start()

    # -- keeping refunds up to date ---------------------------------------------------------

    @property
    def refresh_interval(self) -> float:
        """Seconds between live refreshes: the configured interval, never under 2 s."""
        return max(MIN_INTERVAL, self.session.config.tracking_interval)

    def _tick_tracking(self, force: bool = False) -> None:
        if not any(w.group == "tracking" and not w.is_finished for w in self.workers):
            self.track_refunds(force)

    def track_now(self) -> None:
        """Poll every refund in flight now, whatever its backoff."""
        self._tick_tracking(force=True)

    @work(exit_on_error=False, group="tracking", name="recover")
    async def recover_at_start(self) -> None:
        """The recovery sweep: resolve every pending or unknown attempt left by earlier runs."""
        results = await self.service.recover()
        if results:
            shown = [printable(f"{r.attempt.payment_reference}: {r.outcome}") for r in results[:3]]
            outcomes = "; ".join(shown)
            more = f" (+{len(results) - 3} more)" if len(results) > 3 else ""
            self.notify(f"Recovery: {outcomes}{more}", title="Start-up recovery", timeout=10, markup=False)
            self.tracked_changes()

    @work(exit_on_error=False, group="tracking", name="track")
    async def track_refunds(self, force: bool = False) -> None:
        """Poll the refunds in flight (on their backoff schedule) in the background."""
        if await self.service.track(force=force):
            self.tracked_changes()

    def _watch_ledger(self) -> None:
        """Another process (the webhook receiver) wrote to the ledger: show it now. While the
        team ledger is lost the banner says so; once its watch is back, all is read again."""
        watch = self._ledger_watch
        if watch is None:
            return
        changed = watch.changed()
        self.ledger_lost = watch.lost
        if changed:
            self.tracked_changes()

    def watch_ledger_lost(self, was: str | None, lost: str | None) -> None:
        self.banner_info = dataclasses.replace(self.banner_info, note=LEDGER_LOST if lost else None)
        if lost and was is None:
            self.notify(f"{lost}. No refund can start until it is back; reconnecting…",
                        title="Team ledger lost", severity="error", timeout=10, markup=False)  # fmt: skip
        elif was and lost is None:
            self.notify("The team ledger is back.", title="Team ledger", timeout=5)

    def refund_blocked(self) -> str | None:
        """Why no refund can start now (the team ledger is lost), else None."""
        if self.ledger_lost is None:
            return None
        return (f"Nothing was sent: {self.ledger_lost}. The intent cannot be recorded, so no "
                "refund can start until the team ledger is back (reconnecting…).")  # fmt: skip

    def tracked_changes(self) -> None:
        """Statuses changed: refresh the banner counts and whatever screen shows refunds."""
        if self._ledger_watch is not None:
            self._ledger_watch.changed()  # the refresh below reads every commit made so far
        self.refresh_counts()
        self.screen.post_message(LedgerChanged())

    def _apply_keymap(self, keymap: dict[str, str]) -> None:
        unknown = sorted(set(keymap) - keys.binding_ids())
        if unknown:
            self.notify(
                f"unknown key ids in config [keys]: {', '.join(unknown)} "
                "(see ? for the ids, e.g. lookup.refund)",
                severity="warning",
                timeout=15,
                markup=False,
            )
        self._user_keys = dict(keymap)
        self.set_keymap(keymap)

    def key_for(self, binding: Binding) -> str:
        """The key shown for a binding, after the user's keymap ("? / f1" for two keys)."""
        override = self._user_keys.get(binding.id or "")
        if override or "," in binding.key:
            return " / ".join(
                self.get_key_display(binding.with_key(key.strip(), key_display=None))
                for key in (override or binding.key).split(",")
            )
        return self.get_key_display(binding)

    @work(thread=True, exclusive=True, exit_on_error=False, group="counts", name="ledger-counts")
    def refresh_counts(self) -> tuple[int, int, int, int, int]:
        """Re-read the banner's counts."""
        return banner_counts(self.session.ledger)

    async def on_unmount(self) -> None:
        if self._ledger_watch is not None:
            self._ledger_watch.close()
        if self._owns_session and self.session is not None:
            await self.session.aclose()

    # -- navigation -----------------------------------------------------------------------

    async def action_quit(self) -> None:
        """Quit; while a refund is being sent, only on a second ctrl+q."""
        sending = {w for w in self.workers if w.group == "submit" and not w.is_finished}
        if sending - self._quit_warned:
            self._quit_warned |= sending
            self.notify(
                "A refund is being sent: wait for its outcome. Press ctrl+q again to quit "
                "anyway; the attempt stays in the ledger and is resolved later, never resent "
                "with a new key.",
                severity="warning",
                timeout=10,
            )
            return
        self.exit()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if self._too_small() and action not in ("quit", "help_quit", "command_palette"):
            return False
        return True

    def _needs_session(self) -> bool:
        if self.session is None:
            problem = self.session_problem or "still connecting to the providers: a moment"
            self.notify(problem, severity="warning", markup=False)
            return False
        return True

    def action_show_lookup(self) -> None:
        """The first screen; pressed on it, back to its lists."""
        if self.current_mode == "lookup" and isinstance(self.screen, LookupScreen):
            self.screen.show_home()
        else:
            self.switch_mode("lookup")

    def action_show_board(self) -> None:
        if self._needs_session():
            self.switch_mode("board")

    def action_show_help(self) -> None:
        from refund_tui.tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_show_batch(self) -> None:
        from refund_tui.tui.screens.batch import BatchScreen

        if self._needs_session() and not isinstance(self.screen, BatchScreen):
            self.push_screen(BatchScreen())

    def action_show_reconcile(self) -> None:
        from refund_tui.tui.screens.reconcile import ReconcileScreen

        if self._needs_session() and not isinstance(self.screen, ReconcileScreen):
            self.push_screen(ReconcileScreen())

    def action_show_approvals(self) -> None:
        from refund_tui.tui.screens.approvals import ApprovalsScreen

        if self._needs_session() and not isinstance(self.screen, ApprovalsScreen):
            self.push_screen(ApprovalsScreen())

    def action_show_credentials(self) -> None:
        from refund_tui.tui.screens.credentials import CredentialsScreen

        if not isinstance(self.screen, CredentialsScreen):
            self.push_screen(CredentialsScreen())

    def open_refund(self, view: PaymentView, retry_of: Attempt | None = None) -> None:
        """Open the refund form for ``view`` (prefilled; a new key and confirmation).

        ``retry_of`` is the failed attempt this refund retries (``service.check_retry``).
        """
        from refund_tui.tui.screens.refund_form import RefundFormScreen

        if not self._needs_session():
            return
        if blocked := self.refund_blocked():
            self.notify(blocked, severity="error", timeout=10, markup=False)
            return
        self.push_screen(RefundFormScreen(view, retry_of=retry_of))

    def on_refund_submitted(self, message: RefundSubmitted) -> None:
        """A refund went out: close the form, show the board with that attempt."""
        self._pop_to_base()
        self.switch_mode("board")
        self._pop_to_base()
        self.screen.post_message(LedgerChanged(message.attempt_id))
        self.refresh_counts()
        self._guard_size()

    def on_ledger_changed(self) -> None:
        self.refresh_counts()

    def _pop_to_base(self) -> None:
        while len(self.screen_stack) > 1:
            self.pop_screen()

    # -- terminal size --------------------------------------------------------------------

    def _too_small(self, size: Size | None = None) -> bool:
        width, height = size or self.size
        return width < MIN_WIDTH or height < MIN_HEIGHT

    def _guard_size(self, size: Size | None = None) -> None:
        """Cover the screen with the size message while the terminal is too small."""
        showing = isinstance(self.screen, TooSmallScreen)
        if self._too_small(size) and not showing:
            self.push_screen(TooSmallScreen())
        elif showing and not self._too_small(size):
            self.pop_screen()

    def on_resize(self, event: events.Resize) -> None:
        self._guard_size(event.size)
