"""The UI-free layers stay UI-free: nothing under core/ or providers/ imports Textual."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Imports every module of the two packages in turn, noting the first that pulls Textual in.
PROBE = """
import importlib, json, pkgutil, sys

def textual_loaded():
    return any(name == "textual" or name.startswith("textual.") for name in sys.modules)

report = {"modules": [], "culprit": None, "loaded_before": textual_loaded()}
for package_name in ("refund_tui.core", "refund_tui.providers"):
    package = importlib.import_module(package_name)
    report["modules"].append(package_name)
    for module in pkgutil.walk_packages(package.__path__, package_name + "."):
        importlib.import_module(module.name)
        report["modules"].append(module.name)
        if report["culprit"] is None and textual_loaded():
            report["culprit"] = module.name
report["loaded_after"] = textual_loaded()
print(json.dumps(report))
"""


def test_core_and_providers_never_import_textual() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    probe = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert probe.returncode == 0, probe.stderr
    report = json.loads(probe.stdout)

    assert {"refund_tui.core.money", "refund_tui.providers.base"} <= set(report["modules"])
    assert report["loaded_before"] is False
    assert report["culprit"] is None, f"{report['culprit']} imports textual"
    assert report["loaded_after"] is False
