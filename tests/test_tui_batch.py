"""Batch refunds in the console: checked first, sent on a typed count, each row once."""

from __future__ import annotations

import csv

from textual.widgets import DataTable

from refund_tui.tui.screens.batch import BatchScreen
from refund_tui.tui.screens.count_confirm import CountConfirmScreen
from tests.console import flat, wait_for


def summary(app) -> str:
    return flat(str(app.screen.query_one("#batch-summary").content))


async def test_a_file_is_checked_then_its_good_rows_sent_once_on_a_typed_count(sandbox, session, app, tmp_path):
    ghs = sandbox.create_payment("vesicash", 300, "GHS", "+233241234567")
    xof = sandbox.create_payment("novasend", 20000, "XOF", "+2250701234567")
    seeded = len(sandbox.refunds())
    path = tmp_path / "refunds.csv"
    path.write_text(f"provider;payment;amount;reason\nvesicash;{ghs};120.50;Cancelled\n"
                    f"novasend;{xof};2500;Late\nvesicash;{ghs};200;Too much\n", encoding="utf-8-sig")  # fmt: skip
    async with app.run_test(size=(100, 30)) as pilot:
        await app.run_action("show_batch")
        await wait_for(pilot, lambda: isinstance(app.screen, BatchScreen) and bool(app.screen.query("#batch-path")))
        app.screen.query_one("#batch-path").value = str(path)
        await pilot.press("enter")
        await wait_for(pilot, lambda: "rows. 2 ready" in summary(app))

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
