"""Running refund-tui in another process with its clock off by some minutes (libfaketime).

libfaketime is preloaded directly rather than through the ``faketime`` wrapper: the wrapper
keeps a named semaphore per process id, which a SIGKILLed wrapper leaves behind for a later
process with the same id to trip over.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import pytest

LIBFAKETIME = next(iter(sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))), None)

#: Tests that move another process's clock need libfaketime (Debian: faketime); CI installs it.
needs_faketime = pytest.mark.skipif(
    LIBFAKETIME is None and os.environ.get("CI") != "true",
    reason="libfaketime is not installed (apt-get install faketime)",
)


def faked(faketime: str, *argv: str) -> list[str]:
    """``argv`` run with libfaketime's ``FAKETIME`` (``+10m``, or a frozen ``2026-11-30 03:00:00``)."""
    if LIBFAKETIME is None:
        raise RuntimeError("libfaketime is not installed (apt-get install faketime)")
    return ["env", f"LD_PRELOAD={LIBFAKETIME}", f"FAKETIME={faketime}", *argv]


def command(offset_minutes: int, *args: str) -> list[str]:
    """``python -m refund_tui ARGS`` whose wall clock runs ``offset_minutes`` off."""
    base = [sys.executable, "-m", "refund_tui", *args]
    return faked(f"{offset_minutes:+d}m", *base) if offset_minutes else base


def run(env: dict[str, str], offset_minutes: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        command(offset_minutes, *args), env=env, capture_output=True, text=True, timeout=180
    )
