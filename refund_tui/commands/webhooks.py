"""``refund-tui webhooks serve|list``: receive signed notifications into the ledger.

With the built-in sandbox profile the receiver starts (or joins) the simulator, takes its
webhook secrets and Vesicash signing as they are at start-up (restart the receiver after
changing them) and points the simulator's webhook URLs at itself while it runs. With
any other profile each provider's webhook secret comes from the keyring or environment, and
the provider is configured (in its portal) to send to a public HTTPS address that forwards
to this receiver.
"""

from __future__ import annotations

import contextlib
import logging
import sys

import click
import httpx

from refund_tui.commands.credentials import unlock_for_profile
from refund_tui.commands.output import Refused, print_outcome
from refund_tui.config import ConfigError, Profile, load_config
from refund_tui.core.credentials import WEBHOOK_SECRET, CredentialsError, CredentialStore
from refund_tui.core.ledger import Ledger, LedgerError
from refund_tui.ledger_registry import open_profile_ledger
from refund_tui.core.models import ProviderName
from refund_tui.core.notices import NoticeInbox
from refund_tui.core.secret import Secret
from refund_tui.core.text import printable
from refund_tui.core.webhooks import NOVASEND_SCHEME
from refund_tui.receiver import Endpoint, create_receiver, path_for
from refund_tui.serving import ServeError, listen, serve_foreground, url_of

_WILDCARDS = ("0.0.0.0", "::", "")
_SIMULATOR_TIMEOUT = 10.0


def _profile(profile_name: str | None) -> Profile:
    try:
        return load_config().profile(profile_name)
    except ConfigError as error:
        raise Refused(str(error)) from None


def _open_ledger(profile: Profile) -> Ledger:
    try:
        return open_profile_ledger(profile.name)
    except LedgerError as error:
        raise Refused(str(error)) from None


def _keyring_secrets(profile: Profile) -> dict[ProviderName, Secret]:
    """Each configured provider's webhook secret; Refused naming what is missing."""
    unlock_for_profile(profile.name, (WEBHOOK_SECRET,))
    store = CredentialStore()
    secrets, problems = {}, []
    for provider in ProviderName:
        if getattr(profile, provider.value) is None:
            continue
        try:
            found = store.get(profile.name, provider, fields=(WEBHOOK_SECRET,))
        except CredentialsError as error:
            problems.append(str(error))
            continue
        secrets[provider] = found[WEBHOOK_SECRET]
    if not secrets:
        raise Refused("no webhook secret for any provider of this profile:\n" + "\n".join(problems))
    for problem in problems:
        click.echo(f"warning: {problem}; that provider's notifications are not received", err=True)
    return secrets


class SimulatorLink:
    """A sandbox receiver's hold on the simulator's webhook settings: it verifies with the
    simulator's secrets and Vesicash signing as they are at start-up, points the simulator's
    URLs here, and on exit puts back whatever it replaced (where they still point here)."""

    def __init__(self, simulator: str) -> None:
        self.simulator = simulator
        self.settings = self._call("GET")
        self._ours: dict[str, str] = {}

    def endpoints(self) -> dict[ProviderName, Endpoint]:
        from refund_tui.sandbox.signing import vesicash_scheme

        signing = self.settings["vesicash_signing"]
        return {
            ProviderName.VESICASH: Endpoint(
                vesicash_scheme(signing["signed"], signing["encoding"]),
                Secret(self.settings["vesicash_secret"]),
            ),
            ProviderName.NOVASEND: Endpoint(NOVASEND_SCHEME, Secret(self.settings["novasend_secret"])),
        }

    def point_here(self, base_url: str) -> list[str]:
        """Send the simulator's notifications to ``base_url``; what was replaced, as warnings."""
        self._ours = {f"{p.value}_url": base_url + path_for(p) for p in ProviderName}
        self._call("POST", self._ours)
        return [
            f"the simulator's {key.removesuffix('_url')} webhooks went to {self.settings[key]}; "
            "they come here until this receiver stops"
            for key, url in self._ours.items()
            if self.settings[key] and self.settings[key] != url
        ]

    def restore(self) -> None:
        current = self._call("GET")
        back = {key: self.settings[key] for key, url in self._ours.items() if current[key] == url}
        if back:
            self._call("POST", back)

    def _call(self, method: str, body: dict | None = None) -> dict:
        try:
            answer = httpx.request(
                method, f"{self.simulator}/_sandbox/webhooks", json=body, timeout=_SIMULATOR_TIMEOUT
            )
            answer.raise_for_status()
            return answer.json()
        except (httpx.HTTPError, ValueError) as error:
            raise Refused(f"the simulator at {self.simulator} did not answer ({error})") from None


def _banner(url: str, endpoints: dict, profile: Profile, ledger: Ledger) -> str:
    lines = [f"refund-tui webhooks listening on {url}  (Ctrl+C to stop)", f"  profile   {profile.name}"]
    for provider, endpoint in endpoints.items():
        scheme = endpoint.scheme
        lines.append(
            f"  {provider.value:<9} POST {path_for(provider)}  {scheme.header}: "
            f"{scheme.encoding.value} HMAC-SHA256({scheme.signed.value})"
        )
    lines.append(f"  ledger    {ledger.path}")
    return "\n".join(lines)


def serve_webhooks(profile_name: str | None, host: str, port: int) -> None:
    """Serve until Ctrl+C; every verified notification becomes a ledger event."""
    from refund_tui.session import SessionError, open_simulator

    profile = _profile(profile_name)
    ledger = _open_ledger(profile)
    link = sandbox = None
    try:
        if profile.uses_simulator:
            try:
                simulator, sandbox = open_simulator()
            except (SessionError, ServeError) as error:
                raise Refused(str(error)) from None
            link = SimulatorLink(simulator)
            endpoints = link.endpoints()
        else:
            secrets = _keyring_secrets(profile)
            endpoints = {p: Endpoint(profile.webhook_schemes[p], s) for p, s in secrets.items()}
        try:
            sock = listen(host, port)
        except ServeError as error:
            raise Refused(str(error)) from None
        url = url_of(sock)
        if link is not None:
            loopback = f"http://127.0.0.1:{sock.getsockname()[1]}"
            for warning in link.point_here(loopback if host in _WILDCARDS else url):
                click.echo(f"warning: {warning}", err=True)
        logging.basicConfig(
            level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
        )
        logging.getLogger("refund_tui.webhooks").setLevel(logging.INFO)
        click.echo(_banner(url, endpoints, profile, ledger))
        serve_foreground(create_receiver(NoticeInbox(ledger), endpoints), sock)
        click.echo("webhook receiver stopped")
    finally:
        if link is not None:
            with contextlib.suppress(Refused):
                link.restore()
        if sandbox is not None:
            sandbox.stop()
        ledger.close()


def list_notices(profile_name: str | None, kept: bool, limit: int, as_json: bool) -> None:
    """The newest notifications received, or only those no attempt matches yet."""
    profile = _profile(profile_name)
    ledger = _open_ledger(profile)
    try:
        stored = NoticeInbox(ledger).recent(kept_only=kept, limit=limit)
    finally:
        ledger.close()
    if as_json:
        print_outcome(
            "listed",
            f"{len(stored)} notifications" + (" kept for reconciliation" if kept else ""),
            0,
            notifications=[
                {
                    "received_at": item.received_at.isoformat(),
                    "provider": item.notice.provider.value,
                    "event": item.notice.event,
                    "refund_reference": item.notice.refund_reference,
                    "payment_reference": item.notice.payment_reference,
                    "status": item.notice.status.value if item.notice.status else None,
                    "outcome": item.outcome.value,
                    "attempt_id": item.attempt_id,
                }
                for item in stored
            ],
        )
        return
    if not stored:
        click.echo("no notifications kept for reconciliation" if kept else "no notifications yet")
        return
    for item in stored:
        notice = item.notice
        event, reference = printable(notice.event), printable(notice.refund_reference or "-")
        click.echo(
            f"{item.received_at:%Y-%m-%d %H:%M:%S}  {notice.provider.value:<8}  {event:<18}  "
            f"{reference:<28}  {item.outcome.value:<9}  {(item.attempt_id or '-')[:8]}"
        )
