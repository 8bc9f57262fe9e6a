"""``refund-tui reconcile`` as scripts use it: exit codes, JSON, CSV, acknowledging a finding."""

from __future__ import annotations

import csv
import json
import time

from tests.test_cli import NOVASEND, cli, refund_args


def test_reconcile_exits_0_when_clean_1_with_findings_and_an_acknowledged_finding_stops_counting(
    sandbox, cli_env, tmp_path
):
    reference = sandbox.create_payment(**NOVASEND)
    assert cli(cli_env, *refund_args(NOVASEND, reference, "5000")).returncode == 0
    time.sleep(sandbox.settle_seconds * 4)

    clean = cli(cli_env, "reconcile", "--json")

    assert clean.returncode == 0, clean.stderr
    assert {"ok": True, "findings": [], "payments_checked": 1}.items() <= json.loads(clean.stdout).items()

    direct = sandbox.refund_directly("novasend", reference, 1000, "Made on the dashboard")
    found = cli(cli_env, "reconcile", "--json", "--csv", str(tmp_path / "findings.csv"))

    assert found.returncode == 1, found.stderr
    report = json.loads(found.stdout)
    [finding] = report["findings"]
    assert {"kind": "missing_in_ledger", "provider": "novasend", "payment_reference": reference}.items() <= finding.items()
    assert finding["provider_record"]["reference"] == direct and finding["ledger"] is None
    [row] = list(csv.DictReader((tmp_path / "findings.csv").open(newline="")))
    assert (row["id"], row["provider_reference"], row["provider_amount"]) == (finding["id"], direct, "1000")

    assert cli(cli_env, "reconcile", "--ack", finding["id"]).returncode == 1  # a note is required
    acked = cli(cli_env, "reconcile", "--ack", finding["id"], "--note", "Refunded by finance on the dashboard")
    assert acked.returncode == 0, acked.stderr

    again = cli(cli_env, "reconcile", "--json")

    assert again.returncode == 0, again.stderr
    [finding] = json.loads(again.stdout)["findings"]
    assert finding["acknowledged"]["note"] == "Refunded by finance on the dashboard"
    text = cli(cli_env, "reconcile")
    assert "1 payment checked: 0 findings (1 acknowledged)" in text.stdout


def test_reconcile_of_another_provider_or_period_checks_nothing(sandbox, cli_env):
    reference = sandbox.create_payment(**NOVASEND)
    assert cli(cli_env, *refund_args(NOVASEND, reference, "5000")).returncode == 0

    other = cli(cli_env, "reconcile", "--json", "--provider", "vesicash")
    future = cli(cli_env, "reconcile", "--json", "--since", "2999-01-01")

    for report in (json.loads(other.stdout), json.loads(future.stdout)):
        assert {"ok": True, "findings": [], "payments_checked": 0}.items() <= report.items()
