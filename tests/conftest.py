"""Shared fixtures. ``sandbox``: the built-in simulator over real HTTP, reset for every test."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from refund_tui.sandbox.server import EmbeddedSandbox
from refund_tui.session import Session

#: Settlement unit in tests: pending 0.05 s, processing until 0.15 s, final after.
SANDBOX_SETTLE_SECONDS = 0.05


class SandboxControl:
    """A running simulator plus its control endpoints, as the tests use them."""

    def __init__(self, url: str, settle_seconds: float) -> None:
        self.url = url
        self.settle_seconds = settle_seconds
        self._http = httpx.Client(base_url=f"{url}/_sandbox", timeout=10)

    @property
    def vesicash_url(self) -> str:
        return f"{self.url}/vesicash"

    @property
    def novasend_url(self) -> str:
        return f"{self.url}/novasend"

    def create_payment(
        self,
        provider: str,
        amount: int | float,
        currency: str,
        phone: str,
        *,
        status: str | None = None,
        age_days: float | None = None,
        customer_name: str | None = None,
        merchant_balance: int | float | None = None,
    ) -> str:
        """A new payment (amounts in major units); returns its reference."""
        body = {
            "provider": provider,
            "amount": amount,
            "currency": currency,
            "phone": phone,
            "status": status,
            "age_days": age_days,
            "customer_name": customer_name,
            "merchant_balance": merchant_balance,
        }
        return self._post("/payments", body)["reference"]

    def refunds(self) -> list[dict[str, Any]]:
        """Every refund the simulator holds (seeded ones included), oldest first."""
        return self._checked(self._http.get("/refunds"))

    def duplicate_refund(self, reference: str) -> dict[str, Any]:
        """Execute a refund a second time (a copy with its own reference and the same tag)."""
        return self._post(f"/refunds/{reference}/duplicate", {})

    def amend_refund(self, reference: str, **changes: Any) -> dict[str, Any]:
        """Change a refund behind everyone's back: ``status``, ``failure_reason``, ``amount``."""
        return self._post(f"/refunds/{reference}/amend", changes)

    def refund_directly(self, provider: str, payment: str, amount: int | float, reason: str) -> str:
        """A refund made on the provider's own API, outside refund-tui; returns its reference."""
        from refund_tui.sandbox import demo

        if provider == "vesicash":
            answer = httpx.post(
                f"{self.vesicash_url}/v1/payment/refunds/process",
                headers={"public-key": demo.VESICASH_PUBLIC_KEY, "secret-key": demo.VESICASH_SECRET_KEY},
                json={"amount": amount, "payment_reference": payment, "country_id": 83,
                      "transfer_to": "mobile_number", "momo_phone_number": "233241234567", "reason": reason},
            )  # fmt: skip
            return self._checked(answer)["data"]["reference"]
        answer = httpx.post(
            f"{self.novasend_url}/v1/payin/{payment}/refund",
            auth=(demo.NOVASEND_API_KEY, demo.NOVASEND_API_CLIENT),
            headers={"X-Idempotency-Key": f"dashboard-{payment}-{amount}"},
            json={"amount": amount, "reason": reason, "externalReference": f"dashboard-{payment}"},
        )
        return self._checked(answer)["reference"]

    def faults(
        self,
        *,
        latency_ms: int | None = None,
        fail_next: int | None = None,
        fail_refunds_next: int | None = None,
        drop_next: int | None = None,
        hold_refund_ms: int | None = None,
    ) -> dict[str, int]:
        """Set the given faults (others unchanged); returns all current faults."""
        body = {
            "latency_ms": latency_ms, "fail_next": fail_next,
            "fail_refunds_next": fail_refunds_next, "drop_next": drop_next,
            "hold_refund_ms": hold_refund_ms,
        }
        return self._post("/faults", body)

    def advance(self, seconds: float) -> str:
        """Move the simulator clock forward; returns the new now (ISO 8601)."""
        return self._post("/clock", {"advance_seconds": seconds})["now"]

    def reset(self) -> None:
        """Back to the seeded world: payments, clock, faults and idempotency keys."""
        self._post("/reset", {})

    def webhooks(self, **config: Any) -> dict[str, Any]:
        """Change the webhook configuration (``None`` sends ``null``); returns all of it."""
        return self._checked(self._http.post("/webhooks", json=config))

    def deliveries(self) -> list[dict[str, Any]]:
        """The webhook delivery log, oldest first."""
        return self._checked(self._http.get("/webhooks"))["deliveries"]

    def close(self) -> None:
        self._http.close()

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        given = {name: value for name, value in body.items() if value is not None}
        return self._checked(self._http.post(path, json=given))

    @staticmethod
    def _checked(response: httpx.Response) -> Any:
        if response.is_error:
            raise AssertionError(f"sandbox {response.url.path}: {response.status_code} {response.text}")
        return response.json()


@contextmanager
def _running_sandbox(
    settle_seconds: float = SANDBOX_SETTLE_SECONDS, state_path: Path | None = None
) -> Iterator[SandboxControl]:
    with EmbeddedSandbox(state_path, settle_seconds) as server:
        control = SandboxControl(server.url, settle_seconds)
        try:
            yield control
        finally:
            control.close()


@pytest.fixture(scope="session")
def run_sandbox() -> Callable[..., AbstractContextManager[SandboxControl]]:
    """Starts an extra simulator: ``with run_sandbox(settle_seconds=1.0, state_path=p) as s:``."""
    return _running_sandbox


@pytest.fixture(scope="session")
def sandbox_session(run_sandbox) -> Iterator[SandboxControl]:
    """One in-memory simulator (and control client) for the whole run, started once."""
    with run_sandbox() as control:
        yield control


@pytest.fixture
def sandbox(sandbox_session: SandboxControl) -> SandboxControl:
    """The shared simulator, freshly reset: ``.url``, ``.vesicash_url``, ``.novasend_url`` and
    ``create_payment(...)``, ``refunds()``, ``faults(...)``, ``advance(seconds)``, ``reset()``."""
    sandbox_session.reset()
    return sandbox_session


@pytest.fixture
def sandbox_env(sandbox: SandboxControl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh REFUND_TUI_HOME whose sandbox profile talks to the ``sandbox`` simulator."""
    home = tmp_path / "home"
    for name in [name for name in os.environ if name.startswith("REFUND_TUI_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("REFUND_TUI_HOME", str(home))
    monkeypatch.setenv("REFUND_TUI_SANDBOX_URL", sandbox.url)
    return home


@pytest.fixture
def cli_env(sandbox: SandboxControl, sandbox_env: Path) -> dict[str, str]:
    """The environment of a refund-tui process using ``sandbox_env``."""
    return dict(os.environ)


@pytest.fixture
async def session(sandbox_env: Path) -> AsyncIterator[Session]:
    """The sandbox profile opened on the test simulator, with its own ledger.

    Unknown outcomes are not resolved at once (``retry_delays=()``), so tests see them.
    """
    opened = Session.open("sandbox")
    opened.service.retry_delays = ()
    yield opened
    await opened.aclose()


@pytest.fixture
def app(session: Session):
    """The console on the test session, its clock frozen at ``tests.console.FROZEN``."""
    from refund_tui.tui.app import RefundApp
    from tests.console import FROZEN

    return RefundApp(session=session, clock=lambda: FROZEN)


@pytest.fixture
def fast_refresh(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    """Refresh the console every FAST_INTERVAL seconds instead of the 2 s floor."""
    import dataclasses

    from refund_tui.tui import app as app_module
    from tests.console import FAST_INTERVAL

    monkeypatch.setattr(app_module, "MIN_INTERVAL", FAST_INTERVAL)
    session.config = dataclasses.replace(session.config, tracking_interval=FAST_INTERVAL)


# -- PostgreSQL (the team ledger) --------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """URL of a fresh database for this session on a real server (see tests/postgres.py)."""
    from tests import postgres

    with contextlib.ExitStack() as stack:
        try:
            admin = stack.enter_context(postgres.server())
        except postgres.NoPostgres as missing:
            if os.environ.get("CI") == "true":
                pytest.fail(f"CI=true needs PostgreSQL: {missing}")
            pytest.skip(str(missing))
        yield stack.enter_context(postgres.session_database(admin))


@pytest.fixture
def team_ledger_factory(postgres_database: str) -> Iterator[Callable[..., Any]]:
    """Opens ledgers on one fresh schema of the session database (set up at once):
    ``factory(url=...)`` connects as another role; ``factory.url``, ``factory.schema``."""
    from refund_tui.ledgers.postgres import PostgresLedger, setup

    schema = f"t_{uuid.uuid4().hex[:12]}"
    setup(postgres_database, schema=schema)
    opened: list[PostgresLedger] = []

    def open_ledger(url: str = postgres_database) -> PostgresLedger:
        ledger = PostgresLedger(url, schema=schema, pool_size=2)
        opened.append(ledger)
        return ledger

    open_ledger.url, open_ledger.schema = postgres_database, schema  # type: ignore[attr-defined]
    yield open_ledger
    for ledger in opened:
        ledger.close()
