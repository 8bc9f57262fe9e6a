"""The ledger contract runs against every adapter: ``ledger`` is parametrized over them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from refund_tui.core.ledger import Ledger
from tests.ledger.factories import LedgerSpec

ADAPTERS = ["sqlite", "postgres"]


@pytest.fixture(params=ADAPTERS)
def spec(request, tmp_path: Path) -> LedgerSpec:
    """A fresh, empty ledger of each kind (PostgreSQL: a new schema, set up)."""
    if request.param == "sqlite":
        return LedgerSpec("sqlite", str(tmp_path / "data" / "ledger.sqlite3"))
    factory = request.getfixturevalue("team_ledger_factory")
    return LedgerSpec("postgres", factory.url, factory.schema)


@pytest.fixture
def open_ledger(spec: LedgerSpec) -> Iterator:
    """Opens (another connection to) the test's ledger; everything opened is closed after."""
    opened: list[Ledger] = []

    def opener() -> Ledger:
        ledger = spec.open()
        opened.append(ledger)
        return ledger

    yield opener
    for ledger in opened:
        ledger.close()


@pytest.fixture
def ledger(open_ledger) -> Ledger:
    return open_ledger()
