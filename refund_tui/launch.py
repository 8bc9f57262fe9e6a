"""The ``refund-tui`` command's entry point (and ``python -m refund_tui``).

With no argument it opens the console at once, so the command-line parser (click and every
subcommand's options) stays off the first paint's path. Any argument goes to the CLI
(``refund_tui.cli``), which opens the same console for ``--profile P`` alone.
"""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:]:
        from refund_tui.cli import main as cli

        cli()
    else:
        _console()


def _console() -> None:
    try:
        from refund_tui.tui.app import RefundApp

        RefundApp().run()
    except KeyboardInterrupt:  # ctrl+c before the console took the terminal: as the CLI says it
        from refund_tui.cli import stopped

        stopped(as_json=False)
