"""Wiring for one profile: its ledger, provider clients, credentials and refund service.

The built-in ``sandbox`` profile talks to the simulator: the one at
``REFUND_TUI_SANDBOX_URL`` when set, otherwise an embedded one started on a loopback port
whose world is kept in the data directory, so every command sees the same payments and
refunds. Other profiles read credentials from the environment or the keyring.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import httpx

from refund_tui.config import Config, Profile, load_config, paths, sandbox_url
from refund_tui.core.credentials import WEBHOOK_SECRET, CredentialStore
from refund_tui.core.ledger import Ledger
from refund_tui.core.models import ProviderName
from refund_tui.core.secret import Secret
from refund_tui.core.service import RefundService
from refund_tui.ledger_registry import open_profile_ledger
from refund_tui.providers import make_provider
from refund_tui.providers.base import ProviderSettings

NOVASEND_WINDOW = timedelta(days=7)
SANDBOX_TIMEOUT = 10.0


class SessionError(Exception):
    """The profile cannot be opened; the message says why and what to do."""


@dataclass
class Session:
    config: Config
    profile: Profile
    ledger: Ledger
    service: RefundService
    sandbox: object | None = None

    @classmethod
    def open(cls, profile_name: str | None = None, *, config: Config | None = None) -> Session:
        """Open a profile. Blocking (starts the embedded simulator, reads the keyring)."""
        config = config or load_config()
        profile = config.profile(profile_name)
        ledger = open_profile_ledger(profile.name)
        sandbox = None
        try:
            if profile.uses_simulator:
                url, sandbox = open_simulator()
                providers = _sandbox_providers(simulator_index(url))
            else:
                providers = _live_providers(profile)
        except BaseException:
            ledger.close()
            if sandbox is not None:
                sandbox.stop()
            raise
        service = RefundService(
            ledger,
            providers,
            profile=profile.name,
            environment=profile.environment,
            refunds_enabled=profile.refunds_enabled,
            flag_after=config.flag_after,
            resend_quiet=config.resend_quiet,
            concurrency=config.tracking_concurrency,
        )
        return cls(config, profile, ledger, service, sandbox)

    async def aclose(self) -> None:
        for provider in self.service.providers.values():
            await provider.aclose()
        self.ledger.close()
        if self.sandbox is not None:
            self.sandbox.stop()


def open_simulator():
    """The simulator's URL, and the embedded one started for it (None when
    ``REFUND_TUI_SANDBOX_URL`` names a running one); stop it when done."""
    url = sandbox_url()
    if url is not None:
        return url, None
    from refund_tui.sandbox.server import EmbeddedSandbox

    state_file = paths().sandbox_state_file
    state_file.parent.mkdir(parents=True, exist_ok=True)
    sandbox = EmbeddedSandbox(state_path=state_file)
    sandbox.start()
    return sandbox.url, sandbox


def simulator_index(url: str) -> dict:
    """What ``GET /_sandbox/`` publishes: base URLs and demo credentials per provider."""
    try:
        answer = httpx.get(f"{url.rstrip('/')}/_sandbox/", timeout=SANDBOX_TIMEOUT)
        answer.raise_for_status()
        return answer.json()
    except (httpx.HTTPError, ValueError) as error:
        raise SessionError(
            f"the simulator at {url} did not answer ({type(error).__name__}); "
            "start it with `refund-tui sandbox` or unset REFUND_TUI_SANDBOX_URL"
        ) from None


def _sandbox_providers(published: dict) -> dict:
    """Clients for the simulator, with the demo credentials it publishes."""
    providers = {}
    for name in ProviderName:
        entry = dict(published[name.value])
        entry.pop(WEBHOOK_SECRET, None)
        settings = ProviderSettings(
            base_url=entry.pop("base_url"),
            timeout_seconds=SANDBOX_TIMEOUT,
            refund_window=NOVASEND_WINDOW if name is ProviderName.NOVASEND else None,
        )
        credentials = {key: Secret(value) for key, value in entry.items()}
        providers[name] = make_provider(name, settings, credentials)
    return providers


def _live_providers(profile: Profile) -> dict:
    store = CredentialStore()
    providers = {}
    for name in ProviderName:
        settings: ProviderSettings | None = getattr(profile, name.value)
        if settings is None:
            continue
        credentials = store.get(profile.name, name)
        providers[name] = make_provider(name, settings, credentials)
    if not providers:
        raise SessionError(f"profile '{profile.name}' configures no provider")
    return providers

