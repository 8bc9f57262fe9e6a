"""The console shell: startup, banner, keys and keymap, help, palette, credentials, size guard."""

from __future__ import annotations

import dataclasses
import io
import socket
import threading

import keyring
import pytest
from keyrings.cryptfile.cryptfile import CryptFileKeyring
from rich.console import Console
from textual.widgets import Input, Static

from refund_tui.core.credentials import SET_COMMAND, service_name
from refund_tui.core.models import ProviderName, RefundStatus
from refund_tui.session import Session
from refund_tui.tui import keys
from refund_tui.tui.app import RefundApp
from refund_tui.tui.messages import LedgerChanged
from refund_tui.tui.screens.credentials import CredentialsScreen
from refund_tui.tui.screens.help import HelpScreen
from refund_tui.tui.screens.lookup import LookupScreen
from refund_tui.tui.screens.refund_form import RefundFormScreen
from refund_tui.tui.screens.too_small import TooSmallScreen
from tests.console import flat, screen_text, settle, wait_for
from tests.memory_keyring import MemoryKeyring
from tests.test_tui_refund_flow import GHANA_MOBILE, look_up

LIVE_CONFIG = """
[profiles.prod]
environment = "live"
[profiles.prod.vesicash]
base_url = "https://vesicash.invalid"
[profiles.prod.novasend]
base_url = "https://novasend.invalid"
"""


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("REFUND_TUI_HOME", str(tmp_path))
    return tmp_path


def full_text(static: Static, width: int = 78) -> str:
    """All of a Static's content as plain text, including what is scrolled out of view."""
    console = Console(width=width, file=io.StringIO(), record=True, color_system=None)
    console.print(static.content)
    return console.export_text()


async def leave_the_reference_field(pilot) -> None:
    """Move focus off the text field, so single-letter keys are commands."""
    pilot.app.screen.query_one("#payment").focus()
    await pilot.pause()


async def test_first_paint_then_the_banner_then_the_providers(sandbox, home, monkeypatch):
    """The screen paints before the profile is read; the banner fills before the providers
    connect; a lookup asked for meanwhile runs once they have."""
    from refund_tui import config

    monkeypatch.setenv("REFUND_TUI_SANDBOX_URL", sandbox.url)
    profile_read, connected = threading.Event(), threading.Event()
    real_load, real_open, closed = config.load_config, Session.open, []

    def slow_load(*args):
        profile_read.wait(10)
        return real_load(*args)

    def slow_open(profile_name=None, **options):
        connected.wait(10)
        return real_open(profile_name, **options)

    async def recorded_close(self):
        closed.append(self)
        await real_close(self)

    real_close = Session.aclose
    monkeypatch.setattr(config, "load_config", slow_load)
    monkeypatch.setattr(Session, "open", staticmethod(slow_open))
    monkeypatch.setattr(Session, "aclose", recorded_close)
    app = RefundApp("sandbox")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, LookupScreen)
        assert "opening sandbox..." in screen_text(app)

        profile_read.set()
        await wait_for(pilot, lambda: app.banner_info.environment is not None)
        await pilot.pause()
        banner = screen_text(app).splitlines()[0]
        assert "SANDBOX" in banner and "REFUNDS ENABLED" in banner and "opening" not in banner
        assert app.session is None
        app.screen.query_one("#reference", Input).value = "VSC-GH-FRESH"
        await pilot.press("enter")
        assert "Connecting to the providers: VSC-GH-FRESH is looked up as soon" in flat(
            screen_text(app)
        )

        connected.set()
        await wait_for(pilot, lambda: app.screen.view is not None)
        assert app.screen.view.payment.reference == "VSC-GH-FRESH"
    assert closed == [app.session]


async def test_a_profile_that_cannot_open_says_why(home, monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setenv("REFUND_TUI_SANDBOX_URL", dead)
    app = RefundApp("sandbox")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.session_problem is not None)
        await pilot.pause()
        shown = flat(screen_text(app))
        assert "could not open" in shown
        assert f"Cannot open the profile: the simulator at {dead} did not answer" in shown
        await leave_the_reference_field(pilot)
        await pilot.press("b")
        await pilot.pause()
        assert app.current_mode == "lookup"


async def test_banner_names_profile_mode_operator_and_counts_problems(sandbox, session, app):
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        banner = screen_text(app).splitlines()[0]
        operator = session.service.operator
        assert "SANDBOX" in banner and "REFUNDS ENABLED" in banner
        assert f"{operator.name}@{operator.hostname}" in banner
        assert "FAILED 0" in banner and "UNKNOWN 0" in banner

        reference = sandbox.create_payment("novasend", 1000, "XOF", "+2250701239901")
        view = await session.service.lookup(ProviderName.NOVASEND, reference)
        attempt = await session.service.submit(
            session.service.prepare(view, amount="1000", reason="Overcharged")
        )
        sandbox.advance(60)
        await session.service.track(force=True)
        assert session.ledger.get(attempt.attempt_id).status is RefundStatus.FAILED
        app.post_message(LedgerChanged(attempt.attempt_id))
        await wait_for(pilot, lambda: "FAILED 1" in screen_text(app).splitlines()[0])


async def test_help_lists_every_binding_with_the_users_keys(session, monkeypatch, sandbox):
    session.config = dataclasses.replace(session.config, keys={"lookup.refund": "x"})
    app = RefundApp(session=session)
    async with app.run_test(size=(80, 24)) as pilot:
        await leave_the_reference_field(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        text = full_text(help_screen.query_one("#help-keys", Static), width=120)
        for scope, scoped in keys.registry().items():
            assert keys.SCOPE_TITLES[scope] in text
            for binding in scoped:
                assert binding.id in text and binding.tooltip in text
        rows = [line.split() for line in text.splitlines()]
        assert any(row[:1] == ["x"] and row[-1:] == ["lookup.refund"] for row in rows)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, LookupScreen)

        reference = sandbox.create_payment("vesicash", 10, "GHS", GHANA_MOBILE)
        await look_up(pilot, ProviderName.VESICASH, reference)
        await pilot.press("r")
        await pilot.pause()
        assert isinstance(app.screen, LookupScreen)
        await pilot.press("x")
        await settle(pilot)
        assert isinstance(app.screen, RefundFormScreen)


async def test_palette_runs_registry_actions(session, app):
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Board", "enter")
        await wait_for(pilot, lambda: app.current_mode == "board")


async def test_ctrl_c_does_not_quit_and_ctrl_q_does(session, app):
    async with app.run_test(size=(80, 24)) as pilot:
        await leave_the_reference_field(pilot)
        await pilot.press("ctrl+c")
        await pilot.pause()
        assert app.return_code is None and app.is_running
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert app.return_code == 0


async def test_a_small_terminal_says_the_size_needed(session, app):
    async with app.run_test(size=(79, 24)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, TooSmallScreen)
        shown = flat(screen_text(app))
        assert "too small: 79x24" in shown and "at least 80x24" in shown
        await pilot.press("b")
        await pilot.pause()
        assert app.current_mode == "lookup"

        await pilot.resize_terminal(80, 24)
        await wait_for(pilot, lambda: isinstance(app.screen, LookupScreen))
        await pilot.resize_terminal(100, 20)
        await wait_for(pilot, lambda: isinstance(app.screen, TooSmallScreen))
        assert "too small: 100x20" in flat(screen_text(app))


async def test_credentials_show_sources_masked_and_never_the_secret(sandbox, home, monkeypatch):
    (home / "config").mkdir()
    staging = '[profiles.staging]\nenvironment = "sandbox"\n[profiles.staging.novasend]\nbase_url = "http://x"\n'
    (home / "config" / "config.toml").write_text(LIVE_CONFIG + staging)
    monkeypatch.setenv("REFUND_TUI_SANDBOX_URL", sandbox.url)
    monkeypatch.setenv("REFUND_TUI_PROD_VESICASH_PUBLIC_KEY", "vsc_pub_LIVEsecretvalue1")
    memory = MemoryKeyring()
    vesicash = service_name("prod", ProviderName.VESICASH)
    memory.set_password(vesicash, "secret_key", "vsc_sec_LIVEsecretvalue2")
    previous = keyring.get_keyring()
    keyring.set_keyring(memory)
    try:
        app = RefundApp("sandbox")
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.session is not None)
            await leave_the_reference_field(pilot)
            await pilot.press("k")
            await settle(pilot)
            assert isinstance(app.screen, CredentialsScreen)
            report = full_text(app.screen.query_one("#credentials-report", Static), width=100)
    finally:
        keyring.set_keyring(previous)
    rows = {tuple(line.split()[:4]) for line in report.splitlines()}
    assert ("prod", "vesicash", "public_key", "env") in rows
    assert ("prod", "vesicash", "secret_key", "keyring") in rows
    assert ("prod", "novasend", "api_key", "MISSING") in rows
    assert ("sandbox", "vesicash", "-", "simulator") in rows
    assert ("staging", "novasend", "api_key", "MISSING") in rows  # its own, not demo keys
    assert SET_COMMAND.format(profile="prod", provider="novasend") in report
    assert "MemoryKeyring" in report
    assert "LIVEsecretvalue" not in report


async def test_credentials_screen_opens_even_when_the_profile_cannot(home, monkeypatch):
    """Here the encrypted keyring is locked (no passphrase was asked before the console
    started): the console says so and never prompts for it where the operator cannot see."""
    (home / "config").mkdir()
    (home / "config" / "config.toml").write_text(LIVE_CONFIG)
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "share"))
    CryptFileKeyring().keyring_key = "a passphrase not given to the console"  # creates it
    previous = keyring.get_keyring()
    keyring.set_keyring(CryptFileKeyring())
    try:
        app = RefundApp("prod")
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.session_problem is not None)
            await leave_the_reference_field(pilot)
            await pilot.press("k")
            await settle(pilot)
            report = flat(full_text(app.screen.query_one("#credentials-report", Static)))
    finally:
        keyring.set_keyring(previous)
    assert "the encrypted keyring" in app.session_problem and "is locked" in app.session_problem
    assert "prod vesicash public_key LOCKED" in report
    assert "Keyring backend: keyrings.cryptfile.cryptfile.CryptFileKeyring LOCKED" in report


async def test_start_up_recovery_resolves_an_attempt_left_unknown(sandbox, session):
    reference = sandbox.create_payment("novasend", 20000, "XOF", "+2250701234567")
    view = await session.service.lookup(ProviderName.NOVASEND, reference)
    prepared = session.service.prepare(view, amount="5000", reason="Duplicate charge")
    sandbox.faults(drop_next=1)
    left = await session.service.submit(prepared)  # as if the last run died here
    assert left.status is RefundStatus.UNKNOWN
    app = RefundApp(session=session)

    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await wait_for(pilot, lambda: session.ledger.get(left.attempt_id).status is not RefundStatus.UNKNOWN)
        await wait_for(pilot, lambda: any("recovery" in (n.title or "") for n in app._notifications))

    executed = [r for r in sandbox.refunds() if r["payment_reference"] == reference]
    assert len(executed) == 1
    assert session.ledger.get(left.attempt_id).provider_reference == executed[0]["refund_reference"]


async def test_banner_raises_reversed_refunds(sandbox, session, app):
    reference = sandbox.create_payment("vesicash", 100, "GHS", "+233241239905")
    view = await session.service.lookup(ProviderName.VESICASH, reference)
    ghana = next(c for c in await session.service.countries(ProviderName.VESICASH) if c.iso_code == "GH")
    attempt = await session.service.submit(
        session.service.prepare(view, amount="10", reason="Overcharged", country=ghana)
    )
    for _ in range(2):  # completes, then comes back
        sandbox.advance(60)
        await session.service.track(force=True)
    assert session.ledger.get(attempt.attempt_id).status is RefundStatus.REVERSED

    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: "REVERSED 1" in screen_text(app))


async def test_a_long_banner_keeps_a_space_before_the_counts(sandbox, session, app):
    import dataclasses

    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.banner_info.environment is not None)
        app.banner_info = dataclasses.replace(
            app.banner_info, operator="operator2@a-rather-long-host-name", reversed=1, paid_twice=1
        )
        await pilot.pause()
        banner = screen_text(app).splitlines()[0]

    assert " FAILED 0" in banner and banner.rstrip().endswith("PAID TWICE 1")
