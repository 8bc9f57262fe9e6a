"""Running refund-tui in another process with its clock off by some minutes (libfaketime)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

FAKETIME = shutil.which("faketime")

#: Tests that move another process's clock need libfaketime (Debian: faketime); CI installs it.
needs_faketime = pytest.mark.skipif(
    FAKETIME is None and os.environ.get("CI") != "true",
    reason="libfaketime is not installed (apt-get install faketime)",
)


def command(offset_minutes: int, *args: str) -> list[str]:
    """``python -m refund_tui ARGS`` whose wall clock runs ``offset_minutes`` off."""
    base = [sys.executable, "-m", "refund_tui", *args]
    if not offset_minutes:
        return base
    if FAKETIME is None:
        raise RuntimeError("libfaketime is not installed (apt-get install faketime)")
    return [FAKETIME, "-f", f"{offset_minutes:+d}m", *base]


def run(env: dict[str, str], offset_minutes: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        command(offset_minutes, *args), env=env, capture_output=True, text=True, timeout=180
    )
