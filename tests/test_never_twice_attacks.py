"""Attacks from an adversarial review of the never-pay-twice work (issue 9). Each one paid
twice, lost an attempt or crashed on the first version of that work; each test asserts the
defence now in place. Real processes, real HTTP, the simulator counting what it executed."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import time
from contextlib import closing
from pathlib import Path

import pytest
from textual.widgets import Input

from tests.clock import command, faked, needs_faketime, run
from tests.test_cli import NOVASEND, VESICASH, cli, executed, refund_args


def _attempt_ids(env) -> list[str]:
    path = Path(env["REFUND_TUI_HOME"]) / "data" / "ledger-sandbox.sqlite3"
    if not path.exists():
        return []
    with closing(sqlite3.connect(path)) as conn:
        try:
            return [row[0] for row in conn.execute("SELECT attempt_id FROM attempts ORDER BY seq")]
        except sqlite3.OperationalError:  # schema still being created
            return []


def _wait_for_attempt(env, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while not (ids := _attempt_ids(env)):
        if time.monotonic() > deadline:
            raise TimeoutError("no attempt recorded")
        time.sleep(0.02)
    return ids[0]


@needs_faketime
@pytest.mark.parametrize(
    ("sender_minutes", "decider_minutes"),
    [(0, 20), (-20, 0)],
    ids=["decider-clock-fast", "sender-clock-slow"],
)
def test_a_skewed_clock_never_lets_an_operator_resend_a_held_request(
    sandbox, cli_env, sender_minutes, decider_minutes
):
    """The quiet period is measured between two local clocks (the sender's ledger stamp and
    the decider's now): one host 20 minutes off, and `resend` is offered at once while the
    provider still holds the first request. Both execute: the customer is paid twice."""
    reference = sandbox.create_payment(**VESICASH)
    sandbox.faults(hold_refund_ms=4000)  # the provider holds the first request 4 s
    first = subprocess.Popen(
        command(sender_minutes, *refund_args(VESICASH, reference, "100")),
        env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    attempt_id = _wait_for_attempt(cli_env)
    time.sleep(0.5)  # the request is on the wire, held by the provider

    decided = run(cli_env, decider_minutes, "resend", attempt_id, "--yes")
    first.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while len(executed(sandbox, reference)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)

    assert "Traceback" not in decided.stderr
    assert len(executed(sandbox, reference)) == 1, (
        f"paid twice: resend exit {decided.returncode}, {decided.stdout}{decided.stderr}"
    )


def _one_line_refusal(result, code: int = 1, prefix: str = "refused:") -> None:
    assert "Traceback" not in result.stderr, result.stderr[-600:]
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(prefix), result.stderr


def _break_registry(registry: Path, how: str) -> None:
    registry.parent.mkdir(parents=True, exist_ok=True)
    if how == "json-list":
        registry.write_text("[]\n")
    elif how == "directory":
        registry.mkdir()
    elif how == "not-utf8":
        registry.write_bytes(b"\xff\xfe{}")
    elif how == "unwritable":  # as a read-only config dir does for a non-root operator
        registry.symlink_to("/nonexistent-dir/ledgers.json")


@pytest.mark.parametrize("how", ["json-list", "directory", "not-utf8", "unwritable"])
def test_a_broken_registry_file_is_one_refusal_line_not_a_traceback(sandbox, cli_env, how):
    """ledgers.json is read with no handling of OSError, UnicodeDecodeError or a JSON value
    that is not an object: every command (status, recover, refund) dies with a traceback."""
    _break_registry(Path(cli_env["REFUND_TUI_HOME"]) / "config" / "ledgers.json", how)

    _one_line_refusal(cli(cli_env, "status"))


def test_a_repointed_data_directory_symlink_is_refused(sandbox, cli_env, tmp_path):
    """The registry keys ledgers by their *resolved* path, so when the data directory (a
    symlink to a volume, as ops often set up) points elsewhere, the missing ledger is not
    noticed: a new empty one is created and `recover` no longer sees the unknown refund."""
    home = Path(cli_env["REFUND_TUI_HOME"])
    first_volume, second_volume = tmp_path / "volume1", tmp_path / "volume2"
    first_volume.mkdir()
    second_volume.mkdir()
    home.mkdir(parents=True, exist_ok=True)
    (home / "data").symlink_to(first_volume)
    reference = sandbox.create_payment(**VESICASH)
    sandbox.faults(fail_refunds_next=1)  # the first answer is a 500: outcome unknown
    assert cli(cli_env, *refund_args(VESICASH, reference, "100")).returncode == 3

    (home / "data").unlink()
    (home / "data").symlink_to(second_volume)  # the volume is mounted somewhere else
    recovered = cli(cli_env, "recover")

    assert recovered.returncode == 1 and "missing" in recovered.stderr, (
        f"the unknown refund vanished: exit {recovered.returncode}: {recovered.stdout}"
    )


@pytest.mark.parametrize(
    "args",
    [("resend", "\udcff\udcfe\udcfd\udcfc", "--yes"), ("status", "\udcff\udcfe\udcfd")],
    ids=["resend", "status"],
)
def test_an_attempt_id_that_is_not_utf8_is_refused_not_a_traceback(sandbox, cli_env, args):
    """Bytes that are not UTF-8 on the command line (a Latin-1 terminal over SSH) reached
    SQLite as surrogates: UnicodeEncodeError, a traceback. Now a usage error."""
    encoded = [arg.encode("utf-8", "surrogateescape") for arg in args]
    result = subprocess.run(
        [*(part.encode() for part in command(0)), *encoded],
        env=cli_env, capture_output=True, text=True, errors="replace", timeout=60,
    )  # fmt: skip

    _one_line_refusal(result, code=2, prefix="error:")


def test_a_reason_that_is_not_utf8_is_refused_not_a_traceback(sandbox, cli_env):
    """`--reason` typed on a Latin-1 terminal: the ledger insert raises UnicodeEncodeError
    after the summary, a traceback (nothing is sent)."""
    reference = sandbox.create_payment(**VESICASH)
    args = [*refund_args(VESICASH, reference, "10")]
    args[args.index("--reason") + 1] = "Caf\udce9 closed"
    result = subprocess.run(
        [*(part.encode() for part in command(0)), *(a.encode("utf-8", "surrogateescape") for a in args)],
        env=cli_env, capture_output=True, text=True, errors="replace", timeout=60,
    )  # fmt: skip

    assert executed(sandbox, reference) == []
    _one_line_refusal(result, code=2, prefix="error:")


async def test_a_refused_resend_leaves_a_held_request_unknown_and_unretriable(
    run_sandbox, sandbox_env, monkeypatch
):
    """The provider holds the first request past the quiet period; the operator's resend is
    refused for a passing reason (merchant funds held by another refund still in flight).
    That made the attempt FAILED, the held request then executed, and `--retry-of` paid the
    customer a second time. A refused resend of a keyless request now leaves it UNKNOWN, the
    held execution is found by its tag, and no retry is possible."""
    import asyncio
    from datetime import timedelta

    from refund_tui.core.models import ProviderName, RefundStatus
    from refund_tui.core.service import RefundNotAllowed
    from refund_tui.session import Session
    from tests.test_service import _prepare, _swap_provider

    vesicash = ProviderName.VESICASH
    with run_sandbox(settle_seconds=1.0) as slow:  # another refund's funds held for 3 s
        monkeypatch.setenv("REFUND_TUI_SANDBOX_URL", slow.url)
        session = Session.open("sandbox")
        service = session.service
        service.retry_delays = ()
        try:
            reference = slow.create_payment(
                provider="vesicash", amount=500, currency="GHS", phone="+233241234567",
                merchant_balance=200,
            )  # fmt: skip
            view = await service.lookup(vesicash, reference)
            [ghana] = [c for c in await service.countries(vesicash) if c.iso_code == "GH"]
            other = service.prepare(
                view, amount="150", reason="Duplicate charge", phone="+233245559901", country=ghana
            )  # to a wallet that fails after 3 units: its 150 are held until then
            await service.submit(other)
            _swap_provider(session, vesicash, timeout=0.2)
            slow.faults(hold_refund_ms=4000)
            attempt = await service.submit(await _prepare(service, vesicash, reference, "100"))
            assert attempt.status is RefundStatus.UNKNOWN
            service.resend_quiet = timedelta(seconds=0.3)
            await asyncio.sleep(0.4)

            resent = await service.resend(attempt.attempt_id)
            assert resent.status is RefundStatus.UNKNOWN  # "Insufficient funds" to the resend
            tag = f"[{attempt.request.external_reference}]"
            deadline = asyncio.get_running_loop().time() + 15
            while not any(tag in r.reason for r in (await service.lookup(vesicash, reference)).payment.refunds):
                assert asyncio.get_running_loop().time() < deadline, "the held request never executed"
                await asyncio.sleep(0.2)
            await service.track(force=True)
            await service.recover()
            assert session.ledger.get(attempt.attempt_id).provider_reference is not None
            view = await service.lookup(vesicash, reference)
            with pytest.raises(RefundNotAllowed):
                service.prepare(
                    view, amount="100", reason="Customer cancellation", country=ghana,
                    retry_of=attempt.attempt_id,
                )  # fmt: skip

            ours = [r for r in slow.refunds() if r["payment_reference"] == reference ]
            paid = [r for r in ours if r["status"] != "failed"]  # the other refund fails
            assert len(paid) == 1, (
                f"paid twice for one refund decision: {paid}; the ledger says the first attempt "
                f"is {session.ledger.get(attempt.attempt_id).status}"
            )
        finally:
            await session.aclose()


class _TruncatingVesicash:
    """A Vesicash in front of the simulator that keeps only the first ``keep`` characters of
    a refund's reason, as many payment APIs do with free text (a real HTTP server)."""

    def __init__(self, upstream: str, keep: int) -> None:
        import http.server
        import json
        import threading

        import httpx

        client = httpx.Client(base_url=upstream, timeout=30)

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.command == "POST" and self.path.endswith("/refunds/process"):
                    data = json.loads(body)
                    data["reason"] = data["reason"][:keep]
                    body = json.dumps(data).encode()
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                try:
                    answer = client.request(self.command, self.path, headers=headers, content=body)
                except httpx.HTTPError:  # the simulator dropped the line: drop ours too
                    self.close_connection = True
                    return
                self.send_response(answer.status_code)
                self.send_header("content-type", answer.headers.get("content-type", "application/json"))
                self.send_header("content-length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = _forward

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self._client = client

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()


async def test_a_refund_whose_tag_the_provider_cut_off_blocks_the_resend(sandbox, session):
    """The tag sits at the *end* of the reason. A provider that keeps 100 characters cuts
    it off: the executed refund is never recognised by its tag. The evidence used to say
    "1 refund(s), none tagged" and offer the resend; now a refund of the same amount that no
    attempt explains refuses it."""
    import asyncio
    import dataclasses
    from datetime import timedelta

    from refund_tui.core.models import ProviderName, RefundStatus
    from refund_tui.core.secret import Secret
    from refund_tui.providers import make_provider
    from refund_tui.sandbox import demo

    vesicash = ProviderName.VESICASH
    proxy = _TruncatingVesicash(sandbox.url, keep=100)
    try:
        current = session.service.providers[vesicash]
        session.service.providers[vesicash] = make_provider(
            vesicash,
            dataclasses.replace(current.settings, base_url=f"{proxy.url}/vesicash"),
            {"public_key": Secret(demo.VESICASH_PUBLIC_KEY), "secret_key": Secret(demo.VESICASH_SECRET_KEY)},
        )  # fmt: skip
        service = session.service
        reference = sandbox.create_payment(**VESICASH)
        view = await service.lookup(vesicash, reference)
        [ghana] = [c for c in await service.countries(vesicash) if c.iso_code == "GH"]
        reason = "Customer cancelled the order by phone; goods returned to the warehouse in Accra, ticket 5521"
        prepared = service.prepare(view, amount="100", reason=reason, country=ghana)
        sandbox.faults(drop_next=1)  # executed, the answer lost
        attempt = await service.submit(prepared)
        assert attempt.status is RefundStatus.UNKNOWN
        await service.recover()
        service.resend_quiet = timedelta(seconds=0.3)
        await asyncio.sleep(0.4)

        evidence = await service.resend_evidence(attempt.attempt_id)
        if evidence.refusal is None:
            await service.resend(attempt.attempt_id)
        await service.track(force=True)
        await service.lookup(vesicash, reference)

        assert len(executed(sandbox, reference)) == 1, (
            "paid twice; evidence shown: " + " | ".join(evidence.lines())
            + f"; ledger flags: {session.ledger.get(attempt.attempt_id).double_refunds}"
        )
    finally:
        proxy.close()


def test_a_quiet_period_shorter_than_the_provider_timeout_is_refused(tmp_path):
    """`resend_quiet_minutes = 1` with `timeout_seconds = 300` is accepted: an operator is then
    offered a resend while the first process is still waiting for the first answer (the old
    lease was 3 x timeout + 30 s; the quiet period has no such floor)."""
    from refund_tui.config import ConfigError, load_config

    config = tmp_path / "config.toml"
    config.write_text(
        "[recovery]\nresend_quiet_minutes = 1\n\n"
        '[profiles.prod]\nenvironment = "live"\nrefunds_enabled = true\n\n'
        '[profiles.prod.vesicash]\nbase_url = "https://api.mor.vesicash.com"\ntimeout_seconds = 300\n'
    )

    with pytest.raises(ConfigError, match="resend_quiet"):
        load_config(config)


def test_ledger_init_force_refuses_a_healthy_ledger(sandbox, cli_env):
    """`ledger init --force` is the advice printed for a missing ledger, but it sets aside a
    healthy one just as readily, without a word about the refunds of unknown outcome in it:
    `recover` then says there is nothing to recover, and the money that may have moved is
    tracked nowhere the tool looks."""
    reference = sandbox.create_payment(**VESICASH)
    sandbox.faults(fail_refunds_next=1)
    assert cli(cli_env, *refund_args(VESICASH, reference, "100")).returncode == 3

    started = cli(cli_env, "ledger", "init", "--force")
    recovered = cli(cli_env, "recover")

    assert started.returncode != 0 or recovered.returncode == 3, (
        f"init: {started.stdout.strip()} / recover: {recovered.stdout.strip()}"
    )


@needs_faketime
def test_two_ledger_init_force_in_one_second_never_overwrite_a_set_aside_ledger(
    sandbox, cli_env, tmp_path
):
    """The set-aside name had one-second resolution and `Path.rename` replaced an existing
    file: a second `ledger init --force` in the same second renamed the new empty ledger over
    the set-aside one. Now the names are unique and --force refuses an intact ledger."""
    assert cli(cli_env, "status").returncode == 0
    other = dict(cli_env, REFUND_TUI_HOME=str(tmp_path / "other"))
    assert cli(other, "status").returncode == 0
    data = Path(cli_env["REFUND_TUI_HOME"]) / "data"
    ledger = data / "ledger-sandbox.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        ledger.with_name(ledger.name + suffix).unlink(missing_ok=True)
    shutil.copy(tmp_path / "other" / "data" / ledger.name, ledger)  # replaced by a mishap

    codes = [
        subprocess.run(
            faked("2026-11-30 03:00:00", *command(0, "ledger", "init", "--force")),  # one second
            env=cli_env, capture_output=True, text=True, timeout=60,
        ).returncode
        for _ in range(2)
    ]  # fmt: skip

    assert codes == [0, 1]  # the second finds the new ledger intact and refuses
    kept = [
        aside
        for aside in data.glob("ledger-sandbox.sqlite3.set-aside-*")
        if not aside.name.endswith(("-wal", "-shm"))
    ]
    assert len(kept) == 1, "the replaced file was not kept"


def test_resend_json_never_decides_without_yes(sandbox, cli_env):
    """`resend ATTEMPT --json` without --yes prompted on stdout in front of the JSON, showing
    none of the evidence. Scripts are never asked: it is a usage error, nothing sent."""
    import json

    reference = sandbox.create_payment(**VESICASH)
    sandbox.faults(fail_refunds_next=1)  # refused with a 500 before executing: nothing paid
    assert cli(cli_env, *refund_args(VESICASH, reference, "100")).returncode == 3
    [attempt_id] = _attempt_ids(cli_env)

    decided = cli(cli_env, "resend", attempt_id, "--json")

    assert decided.returncode == 2
    assert json.loads(decided.stdout)["code"] == "confirmation_required"
    assert executed(sandbox, reference) == []


def test_a_relative_refund_tui_home_is_refused(sandbox, cli_env, tmp_path):
    """REFUND_TUI_HOME=rtui (relative) was taken relative to the working directory: the
    refund recorded from one directory was invisible to `recover` run from another (cron's
    cwd). A relative home is now refused before anything is sent."""
    env = dict(cli_env, REFUND_TUI_HOME="rtui")
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    reference = sandbox.create_payment(**VESICASH)
    sandbox.faults(fail_refunds_next=1)

    def cli_in(where, *args):
        return subprocess.run(command(0, *args), env=env, cwd=where, capture_output=True, text=True, timeout=60)

    refused = cli_in(here, *refund_args(VESICASH, reference, "100"))
    recovered = cli_in(there, "recover")

    assert (refused.returncode, recovered.returncode) == (2, 2)
    assert "relative path" in refused.stderr
    assert executed(sandbox, reference) == []


def test_a_deleted_wal_after_a_crash_loses_no_attempt(sandbox, cli_env):
    """After a kill -9 the attempt lived only in the -wal file: with the -wal gone (copied
    without it, "stale file" clean-up) `recover` said nothing to recover while the refund was
    executed. The intent is now checkpointed into the main file as soon as it is recorded."""
    import signal

    assert cli(cli_env, "status").returncode == 0
    reference = sandbox.create_payment(**VESICASH)
    sandbox.faults(hold_refund_ms=1500)
    refund = subprocess.Popen(
        command(0, *refund_args(VESICASH, reference, "100")),
        env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    _wait_for_attempt(cli_env)
    time.sleep(0.3)
    refund.send_signal(signal.SIGKILL)
    refund.wait()
    data = Path(cli_env["REFUND_TUI_HOME"]) / "data"
    for suffix in ("-wal", "-shm"):
        (data / f"ledger-sandbox.sqlite3{suffix}").unlink()
    deadline = time.monotonic() + 10
    while not executed(sandbox, reference) and time.monotonic() < deadline:
        time.sleep(0.1)

    recovered = cli(cli_env, "recover")

    [refund] = executed(sandbox, reference)
    assert recovered.returncode == 0, recovered.stderr
    assert refund["refund_reference"] in recovered.stdout


async def test_the_console_shows_the_request_when_the_ledger_goes_during_a_refund(sandbox, session, app):
    """The CLI prints the whole request when the ledger file is deleted while a refund is
    sent (TrailLost, exit 3). The console says "Keep the request below to trace it with the
    provider" with no request below (no tag, no body), then "The refund may have been
    recorded: check the board" - whose ledger is the deleted file. Nothing on screen traces
    the refund the provider executed."""
    from refund_tui.core.models import ProviderName
    from refund_tui.tui.screens.confirm import ConfirmScreen
    from tests.console import flat, screen_text, settle, wait_for
    from tests.test_tui_refund_flow import GHANA_MOBILE, look_up, type_into

    reference = sandbox.create_payment("vesicash", 250, "GHS", GHANA_MOBILE)
    async with app.run_test(size=(120, 40)) as pilot:
        await look_up(pilot, ProviderName.VESICASH, reference)
        await pilot.press("r")
        await settle(pilot)
        form = app.screen
        await type_into(pilot, form.query_one("#amount", Input), "100")
        await type_into(pilot, form.query_one("#reason", Input), "Duplicate charge")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        sandbox.faults(hold_refund_ms=1500)
        await pilot.press(*"100.00", "enter")
        await wait_for(pilot, lambda: bool(session.ledger.attempts()))
        await pilot.pause(0.3)  # the request is on the wire
        path = session.ledger.path
        for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            file.unlink(missing_ok=True)
        await wait_for(pilot, lambda: "recorded nowhere" in flat(screen_text(app)), timeout=10)
        shown = flat(screen_text(app))

    [attempt] = session.ledger.attempts()  # still readable through the open, deleted file
    assert len(executed(sandbox, reference)) == 1
    assert attempt.request.external_reference in shown, f"nothing to trace the refund by: {shown[-900:]}"


@pytest.mark.parametrize("payment", [VESICASH, NOVASEND], ids=["vesicash", "novasend"])
def test_running_the_same_refund_again_after_exit_3_never_pays_twice(sandbox, cli_env, payment):
    """The careless operator's path: `refund ... --yes` exits 3 (the provider held the
    request past the 10 s timeout), the operator presses up-arrow and Enter. The payment has
    an attempt of unknown outcome, yet a new attempt with a new tag is sent at once: both
    execute. Nothing asks "this payment has a refund of unknown outcome: are you sure?"."""
    reference = sandbox.create_payment(**payment)
    sandbox.faults(hold_refund_ms=13000)

    first = cli(cli_env, *refund_args(payment, reference, "100"))
    assert first.returncode == 3, first.stderr
    again = cli(cli_env, *refund_args(payment, reference, "100"))
    deadline = time.monotonic() + 15
    while len(executed(sandbox, reference)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)

    assert len(executed(sandbox, reference)) == 1, f"paid twice; second run: exit {again.returncode}"


async def test_a_second_execution_that_failed_is_not_reported_as_paid_twice(sandbox, session):
    """`Outcomes.watch` counts every refund carrying the tag, whatever its status. When both
    executions fail at the provider (here: the operator's wallet times out), nobody was paid,
    yet the attempt is flagged "double refund ... the customer was paid twice: recover the
    second payment from the customer" and the banner counts PAID TWICE: the operator is told
    to claw back money the customer never received."""
    import asyncio
    from datetime import timedelta

    from refund_tui.core.models import ProviderName, RefundStatus
    from tests.test_service import _prepare, _swap_provider

    vesicash = ProviderName.VESICASH
    service = session.service
    _swap_provider(session, vesicash, timeout=0.2)
    service.resend_quiet = timedelta(seconds=0.5)
    reference = sandbox.create_payment(provider="vesicash", amount=500, currency="GHS", phone="+233245559903")
    prepared = await _prepare(service, vesicash, reference, "100")
    sandbox.faults(hold_refund_ms=1500)
    attempt = await service.submit(prepared)
    assert attempt.status is RefundStatus.UNKNOWN
    await asyncio.sleep(0.6)
    await service.resend(attempt.attempt_id)
    deadline = asyncio.get_running_loop().time() + 10
    while len(executed(sandbox, reference)) < 2:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.1)
    sandbox.advance(60)  # both settle: failed, "Mobile money operator timeout"
    await service.track(force=True)
    await service.lookup(vesicash, reference)

    statuses = {r["status"] for r in executed(sandbox, reference)}
    assert statuses == {"failed"}
    flagged = session.ledger.get(attempt.attempt_id)
    assert not flagged.double_refunds and session.ledger.double_refund_count() == 0, (
        f"told to recover {flagged.double_refunds} from a customer paid nothing ({flagged.status})"
    )


def test_terminal_escapes_in_a_reason_never_reach_other_terminals(sandbox, cli_env):
    """`check_reason` folds whitespace but keeps control characters: a reason carrying ESC
    sequences is sent to the provider, stored, and replayed raw by `status` on every
    operator's terminal (clear the screen, move the cursor over a "DOUBLE REFUND" or
    "UNKNOWN" line, set the title, OSC 52 clipboard writes)."""
    reference = sandbox.create_payment(**VESICASH)
    args = list(refund_args(VESICASH, reference, "1"))
    args[args.index("--reason") + 1] = "ok\x1b[1A\x1b[2K\x1b]0;pwned\x07"

    sent = cli(cli_env, *args)
    shown = cli(cli_env, "status")

    assert "\x1b" not in shown.stdout, f"refund exit {sent.returncode}; status replays the escapes"


async def test_the_receiver_says_its_ledger_is_gone_not_busy(sandbox, session, caplog):
    """`ledger init --force` (or a deleted ledger) under a running `webhooks serve`: every
    notification from then on is answered 503 "the ledger is busy; send it again later",
    for ever (the receiver never reopens the ledger nor stops); the provider retries, then
    gives up, and the outcomes it notified are lost while the log blames a busy ledger."""
    from refund_tui.core.models import ProviderName
    from tests.notices import deliver, notice_body, running_receiver
    from tests.test_webhook_receiver import refund

    provider = ProviderName.NOVASEND
    attempt = await refund(sandbox, session, provider)
    path = session.ledger.path
    with running_receiver(session.ledger) as url:
        for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            file.unlink(missing_ok=True)
        answers = [deliver(url, provider, notice_body(attempt, "completed")) for _ in range(2)]

    assert [a.status_code for a in answers] == [503, 503]
    assert all("busy" not in a.text for a in answers), answers[-1].text
