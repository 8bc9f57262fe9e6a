"""Which credentials each profile has, where they come from (masked), and the keyring in use.

Keyring calls can hang over SSH, so the report is built in a thread worker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from refund_tui.tui import keys
from refund_tui.tui.messages import describe_error
from refund_tui.tui.widgets.banner import Banner
from refund_tui.tui.widgets.footer import KeyFooter

if TYPE_CHECKING:
    from refund_tui.core.credentials import BackendStatus, FieldStatus


@dataclass(frozen=True, slots=True)
class ProviderCredentials:
    profile: str
    provider: str
    #: None for the built-in sandbox profile: the simulator publishes demo credentials.
    fields: list[FieldStatus] | None
    #: How to store a missing field, e.g. "refund-tui credentials set prod vesicash".
    fix: str


@dataclass(frozen=True, slots=True)
class CredentialsReport:
    backend: BackendStatus
    providers: list[ProviderCredentials]


def build_report(config: object | None) -> CredentialsReport:
    """Read every configured profile's credential status (blocking: keyring calls)."""
    from refund_tui.config import load_config
    from refund_tui.core.credentials import SET_COMMAND, CredentialStore
    from refund_tui.core.models import ProviderName

    config = config or load_config()
    store = CredentialStore()
    entries = []
    for profile in config.profiles.values():
        for provider in ProviderName:
            settings = getattr(profile, provider.value)
            if profile.uses_simulator:
                fields = None
            elif settings is None:
                continue
            else:
                fields = store.status(profile.name, provider)
            fix = SET_COMMAND.format(profile=profile.name, provider=provider.value)
            entries.append(ProviderCredentials(profile.name, provider.value, fields, fix))
    return CredentialsReport(store.backend_status(), entries)


def render_report(report: CredentialsReport) -> Group:
    from refund_tui.core.credentials import WEBHOOK_SECRET

    backend = report.backend
    summary = Text.assemble(("Keyring backend: ", "bold"), backend.name)
    if backend.locked:
        summary.append(f"  LOCKED: {backend.problem}", style="bold")
    elif backend.usable:
        summary.append("  (usable, encrypted)")
    else:
        summary.append(f"  NOT USABLE: {backend.problem}", style="bold")
        summary.append(
            "\nOnly the profiles you define need it: the sandbox profile uses the simulator's demo keys."
        )
    table = Table(box=None, padding=(0, 2), header_style="bold")
    for column in ("Profile", "Provider", "Field", "Source", "Value"):
        table.add_column(column, no_wrap=True)
    missing_fixes = []
    for entry in report.providers:
        if entry.fields is None:
            table.add_row(entry.profile, entry.provider, "-", "simulator", "demo credentials")
            continue
        for status in entry.fields:
            state = status.state if status.present else Text(status.state.upper(), style="bold reverse")
            table.add_row(entry.profile, entry.provider, status.field, state, status.masked or "-")
            fix = f"{entry.fix} --webhook-secret" if status.field == WEBHOOK_SECRET else entry.fix
            if status.state == "missing" and fix not in missing_fixes:
                missing_fixes.append(fix)
    parts: list = [summary, Text(""), table]
    if missing_fixes:
        parts.append(Text("\nStore missing credentials from a shell:", style="bold"))
        parts.extend(Text(f"  {fix}") for fix in missing_fixes)
    if backend.guidance:
        parts.append(Text(""))
        parts.extend(_hanging(paragraph) for paragraph in _paragraphs(backend.guidance))
    return Group(*parts)


def _paragraphs(text: str) -> list[str]:
    """Guidance text re-flowed for the terminal: numbered items and blank lines start anew."""
    paragraphs: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            paragraphs.append("")
        elif not paragraphs or not paragraphs[-1] or re.match(r"\d+\.", stripped):
            paragraphs.append(stripped)
        else:
            paragraphs[-1] += " " + stripped
    return [paragraph for paragraph in paragraphs if paragraph]


def _hanging(paragraph: str) -> Text | Table:
    """A numbered item wraps under its text, not under its number."""
    number = re.match(r"\d+\.\s*", paragraph)
    if number is None:
        return Text(paragraph)
    item = Table.grid()
    item.add_column(no_wrap=True)
    item.add_column()
    item.add_row(Text(number.group()), Text(paragraph[number.end():]))  # not markup
    return item


class CredentialsScreen(Screen[None]):
    """Credential sources per profile and provider, masked; ctrl+r reads them again."""

    BINDINGS = keys.bindings("credentials")

    def compose(self) -> ComposeResult:
        yield Banner()
        with VerticalScroll(id="credentials", can_focus=True):
            yield Static("Reading credentials and probing the keyring...", id="credentials-report")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#credentials").focus()
        self.action_refresh_now()

    def action_refresh_now(self) -> None:
        session = self.app.session
        self._read(session.config if session is not None else None)

    @work(thread=True, exclusive=True, exit_on_error=False, name="credentials")
    def _read(self, config: object | None) -> CredentialsReport:
        return build_report(config)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.name != "credentials":
            return
        report = self.query_one("#credentials-report", Static)
        if event.state is WorkerState.SUCCESS:
            report.update(render_report(event.worker.result))
        elif event.state is WorkerState.ERROR:
            problem = describe_error(event.worker.error)
            report.update(Text(f"Cannot read the credentials: {problem}"))

    def action_back(self) -> None:
        self.dismiss()
