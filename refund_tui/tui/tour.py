"""Scripted walks through the console, shared by the snapshot tests and the README screenshots.

``frozen_world()`` makes a run paint the same bytes on every machine: one hand-moved clock for
the app, the ledger and the simulator, seeded ids instead of random ones, a fixed operator,
no cursor blink. Each ``show_*`` coroutine then drives a ``RefundApp`` (made by ``console``)
through a Pilot, with keys as an operator would, to one state worth a picture. Refunds are
made through the real service against the simulator, never written into the ledger by hand.

    with frozen_world(home, simulator_url) as clock:
        async with console(clock).run_test(size=(80, 24)) as pilot:
            await show_board(pilot)
"""

from __future__ import annotations

import asyncio
import os
import random
import string
import types
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from unittest import mock

import httpx
import keyring
from keyring.backends import fail
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Input, Static

from refund_tui.config import sandbox_url
from refund_tui.core.models import ProviderName
from refund_tui.core.operator import Operator
from refund_tui.tui.app import RefundApp

if TYPE_CHECKING:
    from refund_tui.tui.screens.refund_form import RefundFormScreen

#: When every tour starts (the seeded payments are aged from it).
START = datetime(2025, 5, 14, 9, 30, tzinfo=UTC)
OPERATOR = Operator("operator", 1000, "demo-host", None)
PID = 4242
#: The payment the lookup, form and confirmation tours show.
PAYMENT = "VSC-GH-PARTIAL"

Step = Callable[[Pilot], Awaitable[None]]
ScreenT = TypeVar("ScreenT", bound=Screen)


class Clock:
    """A UTC clock that only moves when told: ``clock()`` is now, ``advance`` moves it."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class _Ids:
    """Random-looking ids from a seeded generator: the same sequence on every run."""

    def __init__(self, seed: str) -> None:
        self._random = random.Random(seed)

    def uuid4(self) -> uuid.UUID:
        return uuid.UUID(int=self._random.getrandbits(128), version=4)

    def token(self, length: int, alphabet: str = string.ascii_lowercase + string.digits) -> str:
        return "".join(self._random.choice(alphabet) for _ in range(length))

    def token_hex(self, nbytes: int) -> str:
        return self._random.randbytes(nbytes).hex()


class _OsWithPid(types.ModuleType):
    """``os`` as the ledger sees it, with a fixed process id."""

    def __init__(self) -> None:
        super().__init__("os")

    def getpid(self) -> int:
        return PID

    def __getattr__(self, name: str) -> object:
        return getattr(os, name)


#: The tour moves the clock itself: background polls on the wall clock would race it.
CONFIG = """\
[tracking]
interval_seconds = 3600
"""


@contextmanager
def frozen_world(home: Path, simulator: str, start: datetime = START) -> Iterator[Clock]:
    """A console home at ``home`` against the simulator at ``simulator``, every source of
    run-to-run difference on screen frozen, the simulator re-seeded; yields the shared clock.

    Patches: the environment (only REFUND_TUI_HOME and REFUND_TUI_SANDBOX_URL of refund-tui's
    variables, no NO_COLOR), the simulator clock (``World.now``: the clock plus its control
    offset), the ledger's timestamps, attempt ids and pid, the service's idempotency keys and
    external references, the simulator's reference tokens, the operator identity, the keyring
    (the no-keyring backend of a bare SSH host) and Input's cursor blink. ``CONFIG`` keeps the
    app from polling in the background.
    """
    from refund_tui.core import service
    from refund_tui.ledgers import sql, sqlite
    from refund_tui.sandbox import control, novasend, vesicash
    from refund_tui.sandbox.world import World

    clock = Clock(start)

    def world_now(world: World) -> datetime:
        return clock() + timedelta(seconds=world.clock_offset_seconds)

    sandbox_ids, ledger_ids, service_ids = _Ids("sandbox"), _Ids("ledger"), _Ids("service")
    environ = {
        name: value
        for name, value in os.environ.items()
        if name != "NO_COLOR" and not name.startswith("REFUND_TUI_")
    }
    environ.update(REFUND_TUI_HOME=str(home), REFUND_TUI_SANDBOX_URL=simulator)
    config = home / "config" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(CONFIG, "utf-8")
    with ExitStack() as stack:
        patch = stack.enter_context
        patch(mock.patch.dict(os.environ, environ, clear=True))
        patch(mock.patch.object(World, "now", world_now))
        patch(mock.patch.object(sqlite, "utcnow", clock))
        patch(mock.patch.object(sql, "uuid", ledger_ids))
        patch(mock.patch.object(sql, "os", _OsWithPid()))
        patch(mock.patch.object(service, "uuid", service_ids))
        patch(mock.patch.object(novasend, "token", sandbox_ids.token))
        patch(mock.patch.object(control, "token", sandbox_ids.token))
        patch(mock.patch.object(vesicash, "secrets", sandbox_ids))
        patch(mock.patch.object(Operator, "current", classmethod(lambda cls, env=None: OPERATOR)))
        patch(mock.patch.object(Input, "_toggle_cursor", lambda self: None))
        previous_keyring = keyring.get_keyring()
        keyring.set_keyring(fail.Keyring())
        stack.callback(keyring.set_keyring, previous_keyring)
        httpx.post(f"{simulator}/_sandbox/reset").raise_for_status()
        yield clock


def console(clock: Clock) -> RefundApp:
    """The console on the sandbox profile, on ``clock``, with animations off."""
    app = RefundApp("sandbox", clock=clock)
    app.animation_level = "none"
    return app


# -- waiting -------------------------------------------------------------------------------


async def wait_until(
    pilot: Pilot, condition: Callable[[], object], what: str, timeout: float = 10.0
) -> None:
    """Run the app until ``condition()`` holds; TimeoutError naming ``what`` after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise TimeoutError(f"the console never got to: {what}")
        await pilot.pause(0.02)


async def settle(pilot: Pilot) -> None:
    """Wait until no worker runs, then drop the toasts (they time out on the wall clock)."""
    app = pilot.app
    await wait_until(pilot, lambda: all(w.is_finished for w in app.workers), "no worker running")
    await pilot.pause()
    app.clear_notifications()
    await pilot.pause()


async def ready(pilot: Pilot) -> None:
    """The session is open, the banner shows the operator and the service reads the clock."""
    app: RefundApp = pilot.app  # type: ignore[assignment]
    opened = lambda: app.session is not None and bool(app.banner_info.operator)  # noqa: E731
    await wait_until(pilot, opened, "the session open")
    app.session.service.clock = app.clock
    await settle(pilot)


async def type_into(pilot: Pilot, field: str, text: str) -> None:
    """Focus ``field``, clear it with home + ctrl+k, type ``text``."""
    pilot.app.screen.query_one(field, Input).focus()
    await pilot.press("home", "ctrl+k", *text)


# -- the first screen, the lookup, the form and the confirmation ------------------------------


async def show_first_screen(pilot: Pilot) -> None:
    """The first screen after some refunds: what needs attention, recent and demo payments."""
    from refund_tui.tui.screens.lookup import LookupScreen

    await ready(pilot)
    await make_refunds(pilot.app)
    pilot.app.refresh_counts()
    screen = pilot.app.screen
    assert isinstance(screen, LookupScreen)
    screen.home = None
    screen.load_home()
    await wait_until(pilot, lambda: screen.home is not None, "the first screen's lists")
    await settle(pilot)


async def show_lookup(pilot: Pilot) -> None:
    """The lookup screen showing a partly refunded Vesicash payment."""
    from refund_tui.tui.screens.lookup import LookupScreen

    await ready(pilot)
    await pilot.press(*PAYMENT, "enter")
    screen = pilot.app.screen
    assert isinstance(screen, LookupScreen)
    await wait_until(pilot, lambda: screen.view is not None, f"{PAYMENT} on screen")
    await settle(pilot)


async def _open_form(pilot: Pilot) -> RefundFormScreen:
    """The lookup, then r: the refund form, its countries loaded."""
    from refund_tui.tui.screens.refund_form import RefundFormScreen

    await show_lookup(pilot)
    await pilot.press("r")
    form = await _screen(pilot, RefundFormScreen)
    await wait_until(pilot, lambda: form.countries, "the countries loaded")
    return form


async def _screen(pilot: Pilot, kind: type[ScreenT]) -> ScreenT:
    """Wait until a ``kind`` screen is on top, and return it."""
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, kind), f"the {kind.__name__}")
    return pilot.app.screen  # type: ignore[return-value]


async def show_refund_form_error(pilot: Pilot) -> None:
    """The refund form refusing an amount over the balance, a short number and no reason."""
    form = await _open_form(pilot)
    await type_into(pilot, "#amount", "200")
    pilot.app.screen.query_one("#phone", Input).focus()
    await pilot.press("end", "backspace", "backspace", "backspace")
    wrong = {"amount", "phone", "reason"}
    await wait_until(pilot, lambda: wrong <= form.problems.keys(), f"problems with {wrong}")
    await settle(pilot)


async def show_confirm(pilot: Pilot) -> None:
    """The confirmation restating the refund, with the amount typed back."""
    from refund_tui.tui.screens.confirm import ConfirmScreen

    form = await _open_form(pilot)
    await type_into(pilot, "#amount", "40")
    form.query_one("#reason-pick").focus()
    await pilot.press("enter", "down", "enter")
    await wait_until(pilot, lambda: not form.problems, "a valid form")
    await pilot.press("ctrl+s")
    await _screen(pilot, ConfirmScreen)
    await pilot.press(*"40.00")
    await settle(pilot)


# -- the board and a failed refund ----------------------------------------------------------

#: Refunds of the board tour, oldest first: (provider, payment, amount, reason, phone or
#: None for the payment's own). The phone's last four digits decide how each one settles.
BOARD_REFUNDS = (
    (ProviderName.VESICASH, "VSC-GH-FRESH", "50.00", "Customer cancellation", None),
    (ProviderName.VESICASH, "VSC-ZM-LIMIT", "80.00", "Order not delivered", None),  # 9902
    (ProviderName.NOVASEND, "tr_demo_stuck", "5000", "Service not rendered", None),  # 9904
    (ProviderName.NOVASEND, "tr_demo_reversed", "6000", "Duplicate charge", None),  # 9905
    (ProviderName.VESICASH, "VSC-ZM-FRESH", "120.00", "Overcharged", "+260965559901"),
)


async def _refund(
    app: RefundApp,
    provider: ProviderName,
    reference: str,
    amount: str,
    reason: str,
    phone: str | None = None,
) -> None:
    """Make one refund through the service, as the console's form and confirmation would."""
    service = app.service
    view = await service.lookup(provider, reference)
    country = None
    if service.provider(provider).sends_phone:
        country = next(c for c in await service.countries(provider) if c.iso_code == view.country)
    prepared = service.prepare(view, amount=amount, reason=reason, phone=phone, country=country)
    await service.submit(prepared)


async def _control(path: str, body: dict) -> None:
    """POST to the simulator's control endpoints (faults, clock)."""
    async with httpx.AsyncClient(base_url=f"{sandbox_url()}/_sandbox") as control:
        (await control.post(path, json=body)).raise_for_status()


async def make_refunds(app: RefundApp) -> None:
    """Fill the ledger with a refund in every status, over ten minutes of clock time.

    ``BOARD_REFUNDS`` settle (completed, failed twice, processing for good, reversed); then
    one whose connection drops mid-answer stays unknown (no immediate resend, and no tracking
    after it), and a last one is still in flight, just sent.
    """
    clock = app.clock
    for refund in BOARD_REFUNDS:
        await _refund(app, *refund)
        clock.advance(67)
    clock.advance(300)
    await app.service.track(force=True)
    await _control("/faults", {"drop_next": 1})
    app.service.retry_delays = ()
    await _refund(app, ProviderName.NOVASEND, "tr_demo_fresh", "15000", "Order not delivered")
    clock.advance(29)
    await _refund(app, ProviderName.VESICASH, PAYMENT, "20.00", "Overcharged")


async def show_board(pilot: Pilot) -> None:
    """The board with refunds in every status."""
    from refund_tui.tui.screens.board import BoardScreen, BoardTable

    await ready(pilot)
    await make_refunds(pilot.app)
    pilot.app.refresh_counts()
    await pilot.press("escape", "b")
    table = (await _screen(pilot, BoardScreen)).query_one(BoardTable)
    count = len(pilot.app.service.ledger.attempts())
    await wait_until(pilot, lambda: table.row_count == count, f"{count} rows on the board")
    await settle(pilot)


async def show_failed_details(pilot: Pilot) -> None:
    """The details of a refund the provider refused: failed filter, then enter."""
    from refund_tui.tui.screens.board import BoardTable
    from refund_tui.tui.screens.details import DetailsScreen

    await show_board(pilot)
    await pilot.press("f")
    table = pilot.app.screen.query_one(BoardTable)
    await wait_until(pilot, lambda: table.row_count == 2, "the two failed refunds")
    await pilot.press("enter")
    screen = await _screen(pilot, DetailsScreen)
    await wait_until(pilot, lambda: screen.details is not None, "the refund read")
    await settle(pilot)


async def show_triage(pilot: Pilot) -> None:
    """Bulk triage on the board: every failed and unknown refund shown, selected with ``*``."""
    await show_board(pilot)
    await pilot.press("asterisk")
    await settle(pilot)


async def show_reconcile(pilot: Pilot) -> None:
    """Reconciliation after the board's refunds: what the providers' records show besides."""
    from refund_tui.tui.screens.reconcile import ReconcileScreen

    await ready(pilot)
    await make_refunds(pilot.app)
    await pilot.press("escape", "C")
    screen = await _screen(pilot, ReconcileScreen)
    await wait_until(pilot, lambda: screen.report is not None, "every record read")
    await settle(pilot)


#: A finance spreadsheet for the seeded world: three good rows, two refused.
BATCH_FILE = """provider,payment,amount,reason,phone
vesicash,VSC-GH-FRESH,50.00,Customer cancellation,
vesicash,VSC-GH-FRESH,250,Duplicate charge,
vesicash,VSC-ZM-FRESH,100,Order not delivered,
novasend,tr_demo_fresh,2500,Client cancellation,
novasend,tr_demo_partial,5000.5,Overcharged,
"""


async def show_batch(pilot: Pilot) -> None:
    """A CSV file checked in the console: rows ready and refused, totals; nothing sent."""
    from refund_tui.tui.screens.batch import BatchScreen

    await ready(pilot)
    home = Path(os.environ["REFUND_TUI_HOME"])
    (home / "refunds.csv").write_text(BATCH_FILE, "utf-8")
    os.environ["HOME"] = str(home)  # the path reads ~/refunds.csv on every machine
    await pilot.press("escape", "B")
    screen = await _screen(pilot, BatchScreen)
    await type_into(pilot, "#batch-path", "~/refunds.csv")
    await pilot.press("enter")
    await wait_until(pilot, lambda: screen.plan is not None, "the file checked")
    await settle(pilot)


async def show_approvals(pilot: Pilot) -> None:
    """An approver's queue on a team ledger: two refunds over the threshold, who asked, why.

    The tour's ledger is the solo SQLite file, which has no approvals: the queue shows two
    of its refunds as a team ledger would list them (awaiting, recorded by ``ama``)."""
    import dataclasses

    from refund_tui.core.approvals import ApprovalRules
    from refund_tui.core.models import RefundStatus
    from refund_tui.core.money import Money
    from refund_tui.tui.screens.approvals import ApprovalsScreen, Queue

    await ready(pilot)
    app = pilot.app
    await _refund(app, ProviderName.NOVASEND, "tr_demo_fresh", "15000", "Customer cancellation")
    app.clock.advance(420)
    await _refund(app, ProviderName.VESICASH, "VSC-GH-FRESH", "250.00", "Order not delivered")
    asker = Operator("ama", 1001, "ops-2", None)
    waiting = [
        dataclasses.replace(attempt, status=RefundStatus.AWAITING_APPROVAL, recorded_by="ama", operator=asker)
        for attempt in reversed(app.service.ledger.attempts())
    ]
    rules = ApprovalRules({"GHS": Money(20000, "GHS"), "XOF": Money(10000, "XOF")}, 24,
                          {"GHS": Money(500000, "GHS")})  # fmt: skip
    queue = Queue(waiting, mine=0, rules=rules, may_approve=True, role="kofi")
    screen = ApprovalsScreen(read=lambda ledger: queue)
    await app.push_screen(screen)
    await wait_until(pilot, lambda: screen.queue is not None, "the queue read")
    await settle(pilot)


# -- help, credentials, too small -----------------------------------------------------------


async def show_help(pilot: Pilot) -> None:
    """Every key, by screen."""
    from refund_tui.tui.screens.help import HelpScreen

    await ready(pilot)
    await pilot.press("escape", "question_mark")
    await _screen(pilot, HelpScreen)
    await settle(pilot)


async def show_credentials(pilot: Pilot) -> None:
    """Credential sources and the keyring (none usable on this frozen host)."""
    from refund_tui.tui.screens.credentials import CredentialsScreen

    await ready(pilot)
    await pilot.press("escape", "k")
    report = (await _screen(pilot, CredentialsScreen)).query_one("#credentials-report", Static)
    await wait_until(pilot, lambda: not isinstance(report.content, str), "the report read")
    await settle(pilot)


async def show_too_small(pilot: Pilot) -> None:
    """The size message (run the app in a terminal under 80x24)."""
    from refund_tui.tui.screens.too_small import TooSmallScreen

    await ready(pilot)
    assert isinstance(pilot.app.screen, TooSmallScreen), "the terminal is not too small"
    await settle(pilot)
