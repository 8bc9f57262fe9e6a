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
