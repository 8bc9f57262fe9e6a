"""``refund-tui credentials set|status|delete``, and the encrypted keyring's passphrase.

Never prints a secret. Every prompt is asked in the main thread on the terminal, where the
operator sees it, before anything reads the keyring; nothing typed ahead outlives the command.
"""

from __future__ import annotations

import sys
import termios
from collections.abc import Iterator
from contextlib import contextmanager

import click

from refund_tui.commands.output import Refused
from refund_tui.config import ConfigError, Profile, load_config
from refund_tui.core.credentials import (
    FIELDS,
    LEDGER_PASSWORD,
    WEBHOOK_SECRET,
    CredentialsError,
    CredentialStore,
    stored_fields,
)
from refund_tui.core.models import ProviderName

#: Wrong passphrases allowed before the command gives up.
PASSPHRASE_ATTEMPTS = 3


def _interactive() -> bool:
    return sys.stdin.isatty()


@contextmanager
def _typeahead_hidden() -> Iterator[None]:
    """What the operator types ahead between prompts (a secret typed during key derivation,
    say) is neither echoed nor left for the shell, where it would run and land in the
    history: echo stays off until the end, and whatever is still unread is then discarded."""
    if not _interactive():
        yield
        return
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    quiet = termios.tcgetattr(fd)
    quiet[3] &= ~termios.ECHO
    termios.tcsetattr(fd, termios.TCSADRAIN, quiet)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSAFLUSH, saved)


def ask_passphrase(store: CredentialStore, *, create: bool = False) -> None:
    """If the keyring is an encrypted file waiting for its passphrase, ask it on the terminal
    and unlock it; Refused when that cannot be done. A keyring that does not exist yet is
    created (passphrase asked twice) only when ``create``, else left alone: nothing is in it."""
    try:
        locked = store.locked_keyring()
    except CredentialsError as error:
        raise Refused(str(error)) from None
    if locked is None or (locked.new and not create):
        return
    if not _interactive():
        raise Refused(
            f"the encrypted keyring {locked.path} is locked and there is no terminal to ask its "
            "passphrase on: run refund-tui from a terminal, or give the credentials in "
            "environment variables (REFUND_TUI_<PROFILE>_<PROVIDER>_<FIELD>)"
        )
    click.echo(f"{'Creating' if locked.new else 'Unlocking'} the encrypted keyring {locked.path}", err=True)
    with _typeahead_hidden():
        for attempt in range(1, PASSPHRASE_ATTEMPTS + 1):
            if locked.new:
                passphrase = click.prompt(
                    "Choose its passphrase (hidden)",
                    hide_input=True,
                    confirmation_prompt="Type the passphrase again",
                    err=True,
                )
            else:
                passphrase = click.prompt("Keyring passphrase (hidden)", hide_input=True, err=True)
            click.echo("Deriving the key...", err=True)
            try:
                store.unlock(passphrase)
                return
            except CredentialsError as error:
                if attempt == PASSPHRASE_ATTEMPTS:
                    raise Refused(str(error)) from None
                click.echo(f"{error}; try again.", err=True)


def store_to_unlock(
    profile_name: str | None, fields: tuple[str, ...] | None = None
) -> CredentialStore | None:
    """The credential store when opening this profile first needs an encrypted keyring
    unlocked (its credentials, or ``fields``, are not all in the environment), else None.

    A profile that cannot be loaded gives None: the caller reports it when it opens it.
    """
    try:
        profile = load_config().profile(profile_name)
    except ConfigError:
        return None
    if profile.uses_simulator:
        return None
    store = CredentialStore()
    needed = any(store.needs_keyring(profile.name, each, fields) for each in _configured(profile))
    return store if needed and store.locked_keyring() is not None else None


def unlock_for_profile(profile_name: str | None, fields: tuple[str, ...] | None = None) -> None:
    """Before a command opens a profile: ask the keyring passphrase if it needs it."""
    store = store_to_unlock(profile_name, fields)
    if store is not None:
        ask_passphrase(store)


def _configured(profile: Profile) -> list[ProviderName]:
    return [name for name in ProviderName if getattr(profile, name.value) is not None]


def _profile(profile_name: str, *, keeps_credentials: bool) -> Profile:
    """The profile, checked before any prompt: it exists and, when asked, keeps credentials
    (the sandbox profile's demo keys come from the simulator)."""
    try:
        profile = load_config().profile(profile_name)
    except ConfigError as error:
        raise Refused(str(error)) from None
    if keeps_credentials and profile.uses_simulator:
        raise Refused(
            f"profile '{profile.name}' uses the simulator's demo credentials and keeps none: "
            "define your own profile in config.toml (see README) to store real ones"
        )
    return profile


def set_credentials(profile_name: str, provider: str, webhook_secret: bool) -> None:
    """Prompt (without echo) for the API credentials, or only the webhook secret, once the
    profile is known and the keyring has shown it can store."""
    name = ProviderName(provider)
    profile = _profile(profile_name, keeps_credentials=True)
    if name not in _configured(profile):
        raise Refused(f"profile '{profile.name}' configures no {name.value} provider")
    fields = (WEBHOOK_SECRET,) if webhook_secret else FIELDS[name]
    store = CredentialStore()
    with _typeahead_hidden():
        ask_passphrase(store, create=True)
        try:
            store.check_writable(profile.name, name)
            values = {
                field: click.prompt(f"{name.value} {field} (hidden)", hide_input=True, err=True)
                for field in fields
            }
            click.echo("Storing...", err=True)
            store.set(profile.name, name, values)
        except CredentialsError as error:
            raise Refused(str(error)) from None
    click.echo(f"stored {', '.join(values)} for {profile.name}/{name.value} in the keyring")


def show_credentials(profile_name: str, provider: str) -> int:
    """Backend in use, then each field's state and masked value; 0 when the API credentials
    are all there (the sandbox profile's demo keys count), else 1."""
    name = ProviderName(provider)
    profile = _profile(profile_name, keeps_credentials=False)
    if profile.uses_simulator:
        click.echo(f"profile '{profile.name}' uses the simulator's demo credentials")
        click.echo("(the simulator publishes them; none are kept in the keyring)")
        for field in stored_fields(name):
            click.echo(f"  {field:<14} demo")
        return 0
    store = CredentialStore()
    if _interactive() and store.needs_keyring(profile.name, name, stored_fields(name)):
        ask_passphrase(store)
    backend = store.backend_status()
    statuses = store.status(profile.name, name)
    if backend.locked:  # a locked keyring whose fields are missing, not locked: none exists yet
        state = "locked" if any(field.state == "locked" for field in statuses) else "not created yet"
    else:
        state = "usable" if backend.usable else "NOT usable"
    click.echo(f"keyring backend: {backend.name} ({state})")
    if backend.problem:
        click.echo(f"problem: {backend.problem}")
    if backend.guidance:
        click.echo(backend.guidance)
    shown = {backend.problem}
    for field in statuses:
        click.echo(f"  {field.field:<14} {field.state:<10} {field.masked or ''}")
        if field.problem and field.problem not in shown:
            click.echo(f"    {field.problem}")
            shown.add(field.problem)
    if profile.ledger_url is not None:
        ledger = store.ledger_password_status(profile.name)
        click.echo(f"  {ledger.field:<14} {ledger.state:<10} (team ledger; libpq's service file, "
                   "PGPASSWORD or ~/.pgpass come first)")  # fmt: skip
    api_fields = [field for field in statuses if field.field in FIELDS[name]]
    return 0 if all(field.present for field in api_fields) else 1


def delete_credentials(profile_name: str, provider: str) -> None:
    name = ProviderName(provider)
    profile = _profile(profile_name, keeps_credentials=True)
    store = CredentialStore()
    ask_passphrase(store)
    try:
        store.delete(profile.name, name)
    except CredentialsError as error:
        raise Refused(str(error)) from None
    click.echo(f"deleted credentials for {profile.name}/{name.value}")


def _team_profile(profile_name: str) -> Profile:
    profile = _profile(profile_name, keeps_credentials=True)
    if profile.ledger_url is None:
        raise Refused(f"profile '{profile.name}' keeps its ledger in an SQLite file: only a team "
                      "ledger (ledger = \"postgresql://...\") takes a password")  # fmt: skip
    return profile


def set_ledger_password(profile_name: str) -> None:
    """Prompt (without echo, twice) for the profile's team-ledger password and store it."""
    profile = _team_profile(profile_name)
    store = CredentialStore()
    with _typeahead_hidden():
        ask_passphrase(store, create=True)
        try:
            store.check_writable(profile.name, None)
            value = click.prompt(f"{LEDGER_PASSWORD} for {profile.name}'s team ledger (hidden)",
                                 hide_input=True, confirmation_prompt=True, err=True)  # fmt: skip
            click.echo("Storing...", err=True)
            store.set_ledger_password(profile.name, value)
        except CredentialsError as error:
            raise Refused(str(error)) from None
    click.echo(f"stored {LEDGER_PASSWORD} for {profile.name} in the keyring")


def delete_ledger_password(profile_name: str) -> None:
    profile = _team_profile(profile_name)
    store = CredentialStore()
    ask_passphrase(store)
    try:
        store.delete_ledger_password(profile.name)
    except CredentialsError as error:
        raise Refused(str(error)) from None
    click.echo(f"deleted {LEDGER_PASSWORD} for {profile.name}")
