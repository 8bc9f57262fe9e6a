"""``refund-tui credentials set|status|delete``: never prints a secret."""

from __future__ import annotations

import click

from refund_tui.commands.output import Refused
from refund_tui.core.credentials import FIELDS, WEBHOOK_SECRET, CredentialsError, CredentialStore
from refund_tui.core.models import ProviderName


def _is_live(profile_name: str) -> bool:
    from refund_tui.config import ConfigError, load_config

    try:
        return load_config().profile(profile_name).is_live
    except ConfigError as error:
        raise Refused(str(error)) from None


def set_credentials(profile_name: str, provider: str, webhook_secret: bool) -> None:
    """Prompt (without echo) for the API credentials, or only the webhook secret."""
    name = ProviderName(provider)
    fields = (WEBHOOK_SECRET,) if webhook_secret else FIELDS[name]
    values = {field: click.prompt(f"{name.value} {field}", hide_input=True) for field in fields}
    try:
        CredentialStore().set(profile_name, name, values, live=_is_live(profile_name))
    except CredentialsError as error:
        raise Refused(str(error)) from None
    click.echo(f"stored {', '.join(values)} for {profile_name}/{name.value} in the keyring")


def show_credentials(profile_name: str, provider: str) -> int:
    """Backend in use, then each field's source and masked value; 1 when none is usable."""
    store = CredentialStore()
    backend = store.backend_status()
    click.echo(f"keyring backend: {backend.name} ({'usable' if backend.usable else 'NOT usable'})")
    if backend.problem:
        click.echo(f"problem: {backend.problem}")
    if backend.guidance:
        click.echo(backend.guidance)
    for field in store.status(profile_name, ProviderName(provider)):
        where = field.source or "missing"
        click.echo(f"  {field.field:<14} {where:<8} {field.masked or ''}")
    return 0 if backend.usable else 1


def delete_credentials(profile_name: str, provider: str) -> None:
    try:
        CredentialStore().delete(profile_name, ProviderName(provider))
    except CredentialsError as error:
        raise Refused(str(error)) from None
    click.echo(f"deleted credentials for {profile_name}/{provider}")
