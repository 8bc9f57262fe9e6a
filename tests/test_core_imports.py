"""The layers stay apart: core/ imports no adapter, UI or driver; providers/ no Textual."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Imports every module of one package in turn, noting the first that pulls a forbidden one in.
PROBE = """
import importlib, json, pkgutil, sys

package_name, forbidden = sys.argv[1], sys.argv[2].split(",")

def loaded():
    return sorted({name for name in sys.modules for bad in forbidden
                   if name == bad or name.startswith(bad + ".")})

report = {"modules": [], "culprit": None, "loaded_before": loaded()}
package = importlib.import_module(package_name)
report["modules"].append(package_name)
for module in pkgutil.walk_packages(package.__path__, package_name + "."):
    importlib.import_module(module.name)
    report["modules"].append(module.name)
    if report["culprit"] is None and loaded():
        report["culprit"] = [module.name, loaded()]
print(json.dumps(report))
"""


@pytest.mark.parametrize(
    ("package", "forbidden", "expected"),
    [
        (
            "refund_tui.core",
            ["textual", "httpx", "sqlite3", "psycopg", "refund_tui.providers", "refund_tui.ledgers"],
            {"refund_tui.core.money", "refund_tui.core.ledger", "refund_tui.core.provider"},
        ),
        ("refund_tui.providers", ["textual"], {"refund_tui.providers.vesicash"}),
    ],
)
def test_layers_import_only_what_they_may(package, forbidden, expected) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    probe = subprocess.run(
        [sys.executable, "-c", PROBE, package, ",".join(forbidden)],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    report = json.loads(probe.stdout)

    assert expected <= set(report["modules"])
    assert report["loaded_before"] == []
    assert report["culprit"] is None, f"{report['culprit'][0]} imports {report['culprit'][1]}"


#: Opens the console as ``refund-tui`` with no argument does, its ``run`` replaced by a list of
#: the modules loaded by then: what the first paint had to import.
CONSOLE_PROBE = """
import json, sys
sys.argv = ["refund-tui"]
from refund_tui.tui.app import RefundApp
RefundApp.run = lambda self: print(json.dumps(sorted(sys.modules)))
from refund_tui.launch import main
main()
"""


def test_the_console_paints_before_importing_the_cli_drivers_or_clients() -> None:
    """The first screen needs none of the command-line parser, the config's validation, a
    database driver, an HTTP client or the provider adapters: they load after it paints."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    probe = subprocess.run(
        [sys.executable, "-c", CONSOLE_PROBE], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert probe.returncode == 0, probe.stderr
    loaded = set(json.loads(probe.stdout))

    assert {"refund_tui.tui.app", "refund_tui.tui.screens.lookup"} <= loaded
    heavy = ["click", "pydantic", "psycopg", "psycopg_pool", "httpx", "sqlite3", "keyring",
             "refund_tui.cli", "refund_tui.config", "refund_tui.ledgers", "refund_tui.providers",
             "refund_tui.session", "refund_tui.core.service", "refund_tui.tui.screens.board"]  # fmt: skip
    assert sorted(m for m in loaded for h in heavy if m == h or m.startswith(h + ".")) == []
