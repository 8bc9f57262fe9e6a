"""Provider credentials from the OS keyring or environment variables, never from plain text.

Keyring entries: service ``refund-tui/<profile>/<provider>``, one user name per field.
Environment variables ``REFUND_TUI_<PROFILE>_<PROVIDER>_<FIELD>`` (upper case, ``-`` -> ``_``)
win over the keyring, for non-interactive use. Every keyring call runs in a daemon thread
with a timeout, because a locked keyring reached over SSH can block forever. A backend that
cannot work (no D-Bus, disabled, locked) is explained with the fixes; a plain-text backend
is refused for live profiles. Values leave this module only as ``Secret`` or masked.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TypeVar

import keyring
from keyring.backend import KeyringBackend
from keyring.backends import chainer, fail, null
from keyring.errors import InitError, KeyringLocked, NoKeyringError, PasswordDeleteError

from refund_tui.core.models import ProviderName
from refund_tui.core.secret import Secret, mask

#: What the API clients need, per provider.
FIELDS: dict[ProviderName, tuple[str, ...]] = {
    ProviderName.VESICASH: ("public_key", "secret_key"),
    ProviderName.NOVASEND: ("api_key", "api_client"),
}
#: The secret the provider signs its notifications with; only the webhook receiver needs it.
WEBHOOK_SECRET = "webhook_secret"
ENV_PREFIX = "REFUND_TUI"
#: How an operator stores credentials from the shell (the CLI's command).
SET_COMMAND = "refund-tui credentials set --profile {profile} --provider {provider}"
SET_WEBHOOK_COMMAND = SET_COMMAND + " --webhook-secret"
_PROBE = ("refund-tui/probe", "probe")
_INSECURE_MARKERS = ("plaintext", "insecure", "unencrypted", "uncrypted")
_DBUS_MARKERS = ("dbus", "secretstorage", "jeepney")

T = TypeVar("T")


def stored_fields(provider: ProviderName) -> tuple[str, ...]:
    """Every field kept for ``provider``: the API credentials and the webhook secret."""
    return (*FIELDS[provider], WEBHOOK_SECRET)


class CredentialsError(Exception):
    """Credentials cannot be read or stored; the message says what is missing and the fix."""


@dataclass(frozen=True, slots=True)
class BackendStatus:
    """The keyring backend in use and whether refund-tui can rely on it."""

    name: str
    usable: bool
    secure: bool
    problem: str | None
    guidance: str | None


@dataclass(frozen=True, slots=True)
class FieldStatus:
    """Where one credential field comes from, shown masked; source None = not set."""

    field: str
    source: str | None
    masked: str | None


class _Unavailable(Exception):
    """A keyring call failed or hung; ``args[0]`` is the operator-readable problem."""


def service_name(profile: str, provider: ProviderName) -> str:
    return f"refund-tui/{profile}/{provider.value}"


def env_variable(profile: str, provider: ProviderName, field: str) -> str:
    """``REFUND_TUI_PROD_VESICASH_SECRET_KEY`` for ("prod", vesicash, "secret_key")."""
    parts = (ENV_PREFIX, profile, provider.value, field)
    return "_".join(re.sub(r"[^A-Z0-9]", "_", part.upper()) for part in parts)


def guidance(example_variable: str = "REFUND_TUI_PROD_VESICASH_SECRET_KEY") -> str:
    """The three ways to give refund-tui a working credential store."""
    return (
        "Fix it in one of three ways:\n"
        "  1. The system Secret Service: install gnome-keyring, start a session with\n"
        "     `dbus-run-session -- $SHELL`, unlock it with `gnome-keyring-daemon --unlock`\n"
        "     (type the keyring password, then Ctrl-D) and run refund-tui in that session.\n"
        "  2. An encrypted file: `pip install keyrings.cryptfile`, then\n"
        "     `export PYTHON_KEYRING_BACKEND=keyrings.cryptfile.cryptfile.CryptFileKeyring`;\n"
        "     its passphrase is asked once per session and never stored.\n"
        f"  3. Environment variables, e.g. {example_variable}=... (for scripts and CI)."
    )


def _backend_name(backend: KeyringBackend) -> str:
    kind = type(backend)
    if isinstance(backend, chainer.ChainerBackend):
        return f"chainer ({', '.join(_backend_name(each) for each in backend.backends) or 'empty'})"
    return f"{kind.__module__}.{kind.__qualname__}"


def _is_secure(backend: KeyringBackend) -> bool:
    """False for plain-text and other backends keyring itself does not recommend."""
    if isinstance(backend, chainer.ChainerBackend):
        return all(_is_secure(each) for each in backend.backends)
    name = _backend_name(backend).lower()
    return not any(marker in name for marker in _INSECURE_MARKERS) and backend.priority >= 1


def _unusable_reason(backend: KeyringBackend) -> str | None:
    """Why this backend cannot store anything, judged from its type alone."""
    if isinstance(backend, fail.Keyring):
        return "no keyring backend is available on this host"
    if isinstance(backend, null.Keyring):
        return (
            "the keyring is disabled (null backend, set by PYTHON_KEYRING_BACKEND "
            "or `keyring --disable`)"
        )
    if isinstance(backend, chainer.ChainerBackend) and not backend.backends:
        return "no keyring backend is available on this host (nothing to chain)"
    return None


def _inspect() -> tuple[KeyringBackend, str, bool, str | None]:
    """The backend keyring chose, its name, whether it is secure, why it is unusable."""
    backend = keyring.get_keyring()
    return backend, _backend_name(backend), _is_secure(backend), _unusable_reason(backend)


def _describe_failure(error: BaseException) -> str:
    """An operator-readable sentence for an exception a keyring backend raised."""
    kind = type(error)
    detail = f"{kind.__name__}: {error}" if str(error) else kind.__name__
    if isinstance(error, NoKeyringError):
        return "no keyring backend is available on this host"
    if isinstance(error, KeyringLocked):
        return "the keyring is locked and could not be unlocked"
    if isinstance(error, InitError):
        return f"the keyring could not be initialised ({detail})"
    if any(marker in f"{kind.__module__}.{kind.__name__}".lower() for marker in _DBUS_MARKERS):
        return f"the Secret Service cannot be reached over D-Bus ({detail})"
    return f"the keyring failed ({detail})"


class CredentialStore:
    """Reads and writes provider credentials; every keyring call is bounded by ``timeout``."""

    def __init__(self, timeout: float = 5.0, environ: Mapping[str, str] | None = None) -> None:
        self.timeout = timeout
        self.environ = os.environ if environ is None else environ

    # -- the keyring, bounded ---------------------------------------------------------

    def _run(self, call: Callable[..., T], *args: object, secrets: tuple[str, ...] = ()) -> T:
        """``call(*args)`` in a daemon thread; _Unavailable on failure or timeout.

        ``secrets`` are scrubbed from any error text before it leaves.
        """
        future: Future[T] = Future()

        def work() -> None:
            try:
                future.set_result(call(*args))
            except BaseException as error:  # handed to the waiting thread
                future.set_exception(error)

        threading.Thread(target=work, name="refund-tui-keyring", daemon=True).start()
        try:
            return future.result(timeout=self.timeout)
        except Exception as error:
            if isinstance(error, TimeoutError) and not future.done():
                problem = (
                    f"the keyring did not answer within {self.timeout:g} s "
                    "(a locked keyring waiting for an unlock prompt?)"
                )
            else:
                problem = _describe_failure(error)
            for secret in secrets:
                problem = problem.replace(secret, mask(secret))
            raise _Unavailable(problem) from None

    def backend_status(self) -> BackendStatus:
        """The backend in use, probed with a harmless read; never raises."""
        try:
            backend, name, secure, problem = self._run(_inspect)
        except _Unavailable as error:
            return BackendStatus("unknown", False, False, str(error), guidance())
        if problem is None:
            try:
                self._run(backend.get_password, *_PROBE)
            except _Unavailable as error:
                problem = str(error)
        if problem is not None:
            return BackendStatus(name, False, secure, problem, guidance())
        return BackendStatus(name, True, secure, None, None)

    def _usable_backend(
        self, profile: str, provider: ProviderName, live: bool, needed: str
    ) -> KeyringBackend:
        """The keyring backend, or CredentialsError saying why it cannot be used for ``needed``."""
        status = self.backend_status()
        fixes = guidance(env_variable(profile, provider, FIELDS[provider][-1]))
        if not status.usable:
            raise CredentialsError(f"{needed}: {status.problem}.\n{fixes}")
        if live and not status.secure:
            raise CredentialsError(
                f"{needed}: the keyring backend {status.name} does not encrypt secrets, and "
                f"refund-tui will not keep live credentials (profile '{profile}') in plain "
                f"text.\n{fixes}"
            )
        return keyring.get_keyring()

    # -- public -------------------------------------------------------------------------

    def get(
        self,
        profile: str,
        provider: ProviderName,
        *,
        live: bool,
        fields: tuple[str, ...] | None = None,
    ) -> dict[str, Secret]:
        """The provider's API credentials (or the named ``fields``); CredentialsError naming
        what is missing."""
        fields = fields or FIELDS[provider]
        values = self._from_env(profile, provider, fields)
        missing = [field for field in fields if field not in values]
        if missing:
            needed = f"{provider.value} credentials for profile '{profile}'"
            backend = self._usable_backend(profile, provider, live, f"cannot read the {needed}")
            service = service_name(profile, provider)
            for field in missing:
                try:
                    value = self._run(backend.get_password, service, field)
                except _Unavailable as error:
                    raise CredentialsError(f"cannot read the {needed}: {error}") from None
                if value:
                    values[field] = value
            missing = [field for field in fields if field not in values]
        if missing:
            variables = ", ".join(env_variable(profile, provider, field) for field in missing)
            command = SET_WEBHOOK_COMMAND if missing == [WEBHOOK_SECRET] else SET_COMMAND
            raise CredentialsError(
                f"no {', '.join(missing)} for {provider.value} in profile '{profile}': store "
                f"{'it' if len(missing) == 1 else 'them'} with "
                f"`{command.format(profile=profile, provider=provider.value)}`, "
                f"or set {variables}"
            )
        return {field: Secret(values[field]) for field in fields}

    def set(
        self, profile: str, provider: ProviderName, values: dict[str, str], *, live: bool
    ) -> None:
        """Store some or all fields in the keyring (values are stripped; empty is refused)."""
        fields = stored_fields(provider)
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise CredentialsError(
                f"{provider.value} has no field {', '.join(unknown)} (fields: {', '.join(fields)})"
            )
        cleaned = {field: value.strip() for field, value in values.items()}
        empty = [field for field, value in cleaned.items() if not value]
        if empty:
            raise CredentialsError(f"{', '.join(empty)} cannot be empty")
        needed = f"cannot store the {provider.value} credentials for profile '{profile}'"
        backend = self._usable_backend(profile, provider, live, needed)
        service = service_name(profile, provider)
        for field, value in cleaned.items():
            try:
                self._run(backend.set_password, service, field, value, secrets=(value,))
            except _Unavailable as error:
                raise CredentialsError(f"{needed}: {error}") from None

    def delete(self, profile: str, provider: ProviderName) -> None:
        """Remove the provider's fields from the keyring (absent fields are fine)."""
        needed = f"cannot delete the {provider.value} credentials for profile '{profile}'"
        backend = self._usable_backend(profile, provider, False, needed)
        service = service_name(profile, provider)
        for field in stored_fields(provider):
            try:
                self._run(_delete_if_present, backend, service, field)
            except _Unavailable as error:
                raise CredentialsError(f"{needed}: {error}") from None

    def status(self, profile: str, provider: ProviderName) -> list[FieldStatus]:
        """Each field's source and masked value; never raises (see backend_status for why)."""
        fields = stored_fields(provider)
        values = self._from_env(profile, provider, fields)
        sources = dict.fromkeys(values, "env")
        missing = [field for field in fields if field not in values]
        if missing and self.backend_status().usable:
            backend = keyring.get_keyring()
            service = service_name(profile, provider)
            for field in missing:
                try:
                    value = self._run(backend.get_password, service, field)
                except _Unavailable:
                    break
                if value:
                    values[field], sources[field] = value, "keyring"
        return [
            FieldStatus(field, sources.get(field), mask(values[field]) if field in values else None)
            for field in fields
        ]

    def _from_env(
        self, profile: str, provider: ProviderName, fields: tuple[str, ...]
    ) -> dict[str, str]:
        found = {}
        for field in fields:
            value = self.environ.get(env_variable(profile, provider, field), "").strip()
            if value:
                found[field] = value
        return found


def _delete_if_present(backend: KeyringBackend, service: str, field: str) -> None:
    try:
        backend.delete_password(service, field)
    except PasswordDeleteError:
        pass
