"""Batch refunds in the console: checked first, sent on a typed count, each row once."""

from __future__ import annotations

import csv
from datetime import timedelta

from textual.widgets import DataTable

from refund_tui.core.batch import plan_batch, read_batch, run_batch
from refund_tui.tui.screens.batch import BatchScreen
from refund_tui.tui.screens.count_confirm import CountConfirmScreen
from tests.console import flat, wait_for


def summary(app) -> str:
    return flat(str(app.screen.query_one("#batch-summary").content))


async def check_file(app, pilot, path, shown: str) -> None:
    """Open the batch screen, type the file's path and wait until the check says ``shown``."""
    await app.run_action("show_batch")
    await wait_for(pilot, lambda: isinstance(app.screen, BatchScreen) and bool(app.screen.query("#batch-path")))
    app.screen.query_one("#batch-path").value = str(path)
    await pilot.press("enter")
    await wait_for(pilot, lambda: shown in summary(app))


async def test_a_file_is_checked_then_its_good_rows_sent_once_on_a_typed_count(sandbox, session, app, tmp_path):
    ghs = sandbox.create_payment("vesicash", 300, "GHS", "+233241234567")
    xof = sandbox.create_payment("novasend", 20000, "XOF", "+2250701234567")
    seeded = len(sandbox.refunds())
    path = tmp_path / "refunds.csv"
    path.write_text(f"provider;payment;amount;reason\nvesicash;{ghs};120.50;Cancelled\n"
                    f"novasend;{xof};2500;Late\nvesicash;{ghs};200;Too much\n", encoding="utf-8-sig")  # fmt: skip
    async with app.run_test(size=(100, 30)) as pilot:
        await check_file(app, pilot, path, "rows. 2 ready")

        assert "refunds.csv: 3 rows. 2 ready (120.50 GHS, 2,500 XOF), 1 refused" in summary(app)
        table = app.screen.query_one(DataTable)
        assert table.get_cell("3", "check").plain.startswith(
            "refused: amount: over the refundable balance: max 179.50 GHS once row 1 of this file is counted"
        )
        assert len(sandbox.refunds()) == seeded  # nothing sent by the check

        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, CountConfirmScreen))
        assert str(app.screen.query_one("#bulk-summary").content).startswith(
            "SANDBOX: send 2 refunds from refunds.csv, totalling 120.50 GHS, 2,500 XOF; 1 refused rows are skipped."
        )
        await pilot.press("2", "enter")
        await wait_for(pilot, lambda: summary(app).startswith("Sent 2,"), timeout=10)

    mine = [r for r in sandbox.refunds() if r["payment_reference"] in (ghs, xof)]
    assert sorted(r["amount"] for r in mine) == [120.5, 2500]
    with open(tmp_path / "refunds.results.csv", newline="", encoding="utf-8") as handle:
        assert [line["status"] for line in csv.DictReader(handle)][2] == "skipped"


async def test_a_vesicash_row_left_unknown_is_resent_with_r_only_after_its_quiet_period(sandbox, session, app, tmp_path):
    """An earlier run's 500 leaves row 1 unknown (nothing executed) and row 2, of the same
    payment, refused behind it. The screen says why row 1 is not resent yet; once the quiet
    period is over (here set to zero in-process, the code path of `refund-tui resend`), R and
    the typed count resend it once, and the file is checked again: row 2 is then ready."""
    ghs = sandbox.create_payment("vesicash", 300, "GHS", "+233241234567")
    path = tmp_path / "refunds.csv"
    path.write_text(f"provider,payment,amount,reason\nvesicash,{ghs},100,Cancelled\nvesicash,{ghs},50,Late\n")
    batch = read_batch(path)
    sandbox.faults(fail_refunds_next=1)
    plan = await plan_batch(session.service, batch)
    plan.ready = plan.ready[:1]
    await run_batch(session.service, plan)
    assert all(r["payment_reference"] != ghs for r in sandbox.refunds())
    async with app.run_test(size=(100, 30)) as pilot:
        await check_file(app, pilot, path, "of unknown outcome")
        table = app.screen.query_one(DataTable)
        assert "1 of unknown outcome at Vesicash, 0 may be resent now (R)" in summary(app)
        assert "not resent: the last request left at" in table.get_cell("1", "check").plain
        assert "may still be executing" in table.get_cell("1", "check").plain
        assert "no known outcome" in table.get_cell("2", "check").plain
        await pilot.press("R")
        assert not isinstance(app.screen, CountConfirmScreen)

        session.service.resend_quiet = timedelta(0)
        app.screen.query_one("#batch-path").focus()
        await pilot.press("enter")  # check the file again
        await wait_for(pilot, lambda: "1 may be resent now (R)" in summary(app))
        assert table.get_cell("1", "check").plain.startswith("unknown: the record shows none of it")
        await pilot.press("R")
        await wait_for(pilot, lambda: isinstance(app.screen, CountConfirmScreen))
        assert str(app.screen.query_one("#bulk-summary").content).startswith(
            "SANDBOX: resend 1 Vesicash refunds of unknown outcome, totalling 100.00 GHS."
        )
        await pilot.press("1", "enter")
        await wait_for(pilot, lambda: "rows. 1 ready" in summary(app), timeout=10)
        assert table.get_cell("1", "check").plain == "sent by an earlier run"

    mine = [r for r in sandbox.refunds() if r["payment_reference"] == ghs]
    assert [r["amount"] for r in mine] == [100]
