"""refund-tui's command line run inside the test process: what a finished process would give
(exit code, stdout, stderr) without the second or two a new Python process costs."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

from refund_tui.cli import main


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


def run_cli(capsys: pytest.CaptureFixture, env: dict[str, str], *args: str) -> Result:
    """Run ``refund-tui ARGS`` with ``env``'s REFUND_TUI_* and credential variables in force."""
    with pytest.MonkeyPatch.context() as patch:
        for name in [name for name in os.environ if name.startswith("REFUND_TUI_") and name not in env]:
            patch.delenv(name)
        for name, value in env.items():
            if os.environ.get(name) != value:
                patch.setenv(name, value)
        capsys.readouterr()
        with pytest.raises(SystemExit) as done:
            main.main(list(args), prog_name="refund-tui")
        out, err = capsys.readouterr()
    return Result(done.value.code or 0, out, err)
