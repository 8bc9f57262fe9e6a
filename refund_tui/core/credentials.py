"""Provider credentials from the OS keyring or environment variables, never from plain text.

Keyring entries: service ``refund-tui/<profile>/<provider>``, one user name per field.
Environment variables ``REFUND_TUI_<PROFILE>_<PROVIDER>_<FIELD>`` (upper case, ``-`` -> ``_``)
win over the keyring, for non-interactive use. Every keyring call runs in a daemon thread
with a timeout, because a locked keyring reached over SSH can block forever. A backend that
cannot work (no D-Bus, disabled, locked) is explained with the fixes; a plain-text backend
is refused for every profile (only the built-in sandbox profile, whose demo keys come from the
simulator, never reads the keyring). An encrypted-file keyring (keyrings.cryptfile) is never
allowed to ask its own passphrase from a worker thread: the caller asks it first, on the
terminal, and hands it to ``unlock``; until then every read reports the keyring as locked.
Values leave this module only as ``Secret`` or masked.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
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
#: A profile's team-ledger (PostgreSQL) password: keyring service ``refund-tui/<profile>/ledger``.
LEDGER_PASSWORD = "ledger_password"
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
    """The keyring backend in use and whether refund-tui can rely on it.

    ``locked``: not usable until unlocked (an encrypted file waiting for its passphrase, see
    ``CredentialStore.unlock``, or a locked Secret Service collection).
    """

    name: str
    usable: bool
    secure: bool
    problem: str | None
    guidance: str | None
    locked: bool = False


#: Where a field's value comes from (``env``, ``keyring``, ``demo``), or why there is none:
#: ``missing`` (nothing stored), ``locked`` (the keyring needs unlocking first),
#: ``unreadable`` (the keyring failed or cannot be used; ``FieldStatus.problem`` says why).
PRESENT_STATES = ("env", "keyring", "demo")


@dataclass(frozen=True, slots=True)
class FieldStatus:
    """One credential field: its state (see PRESENT_STATES), masked value, problem."""

    field: str
    state: str
    masked: str | None = None
    problem: str | None = None

    @property
    def present(self) -> bool:
        return self.state in PRESENT_STATES


@dataclass(frozen=True, slots=True)
class LockedKeyring:
    """An encrypted-file keyring waiting for its passphrase; ``path`` for display (``~/``);
    ``new``: no file yet, so the passphrase is being chosen (ask it twice)."""

    path: str
    new: bool


class _Unavailable(Exception):
    """A keyring call failed or hung; ``args[0]`` is the operator-readable problem."""


class _Locked(_Unavailable):
    """The keyring must be unlocked before this call."""


def service_name(profile: str, provider: ProviderName) -> str:
    return f"refund-tui/{profile}/{provider.value}"


def ledger_service(profile: str) -> str:
    return f"refund-tui/{profile}/ledger"


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
        "  2. An encrypted file: install keyrings.cryptfile beside refund-tui (its extra:\n"
        "     `pip install '.[cryptfile]'` in the source tree); refund-tui then asks its\n"
        "     passphrase on the terminal, once per run, and never stores it.\n"
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
        return bool(backend.backends) and all(_is_secure(each) for each in backend.backends)
    name = _backend_name(backend).lower()
    return not any(marker in name for marker in _INSECURE_MARKERS) and backend.priority >= 1


def _effective(backend: KeyringBackend) -> KeyringBackend:
    """The backend refund-tui uses: keyring's choice, but of a chain (keyring chains every
    viable backend, plain-text ones included, as soon as keyrings.cryptfile is installed) only
    its highest-priority secure member, so nothing is read from or written to plain text."""
    if isinstance(backend, chainer.ChainerBackend):
        secure = [each for each in backend.backends if _is_secure(each)]
        if secure:
            return secure[0]
    return backend


def _is_encrypted_file(backend: KeyringBackend) -> bool:
    """A keyrings.cryptfile-style keyring: asks its passphrase itself (getpass) unless given."""
    return isinstance(getattr(type(backend), "keyring_key", None), property)


def _is_locked(backend: KeyringBackend) -> bool:
    # ``_keyring_key`` is where these backends keep the passphrase; reading the public
    # ``keyring_key`` instead would prompt for it.
    return _is_encrypted_file(backend) and getattr(backend, "_keyring_key", None) is None


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
    if not _is_secure(backend):
        return (
            f"the keyring backend {_backend_name(backend)} keeps secrets in plain text or is "
            "not one keyring recommends, and refund-tui keeps no provider credentials in it"
        )
    return None


def _inspect() -> tuple[KeyringBackend, str, bool, str | None]:
    """The backend in use, its name, whether it is secure, why it is unusable."""
    backend = _effective(keyring.get_keyring())
    return backend, _backend_name(backend), _is_secure(backend), _unusable_reason(backend)


def _home_relative(path: object) -> str:
    """``~/.local/share/...`` for a path under the home directory: shorter on 80 columns."""
    path, home = str(path), str(Path.home())
    return "~" + path[len(home):] if path.startswith(home + "/") else path


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
    """Reads and writes provider credentials; every keyring call is bounded by ``timeout``
    (an encrypted file's calls by ``timeout + KEY_DERIVATION_ALLOWANCE``)."""

    #: Seconds allowed on top of ``timeout`` for an encrypted file's calls: each one derives a
    #: key (Argon2, about a second on an idle machine, several on a busy one).
    KEY_DERIVATION_ALLOWANCE = 60.0

    def __init__(self, timeout: float = 5.0, environ: Mapping[str, str] | None = None) -> None:
        self.timeout = timeout
        self.environ = os.environ if environ is None else environ

    # -- the keyring, bounded ---------------------------------------------------------

    def _run(
        self,
        call: Callable[..., T],
        *args: object,
        secrets: tuple[str, ...] = (),
        timeout: float | None = None,
    ) -> T:
        """``call(*args)`` in a daemon thread; _Unavailable on failure or timeout.

        ``secrets`` are scrubbed from any error text before it leaves.
        """
        timeout = self.timeout if timeout is None else timeout
        future: Future[T] = Future()

        def work() -> None:
            try:
                future.set_result(call(*args))
            except BaseException as error:  # handed to the waiting thread
                future.set_exception(error)

        threading.Thread(target=work, name="refund-tui-keyring", daemon=True).start()
        try:
            return future.result(timeout=timeout)
        except Exception as error:
            if isinstance(error, TimeoutError) and not future.done():
                problem = (
                    f"the keyring did not answer within {timeout:g} s "
                    "(a locked keyring waiting for an unlock prompt?)"
                )
            else:
                problem = _describe_failure(error)
            for secret in secrets:
                problem = problem.replace(secret, mask(secret))
            kind = _Locked if isinstance(error, KeyringLocked) else _Unavailable
            raise kind(problem) from None

    def _call(
        self, backend: KeyringBackend, call: Callable[..., T], *args: object, secrets=()
    ) -> T:
        """``call(*args)``, a call on ``backend``, via ``_run``; an encrypted file that is still
        locked is refused here, so that it never prompts from the thread."""
        if _is_locked(backend):
            raise _Locked(self._locked_problem(backend))
        timeout = self.timeout
        if _is_encrypted_file(backend):
            timeout += self.KEY_DERIVATION_ALLOWANCE
        return self._run(call, *args, secrets=secrets, timeout=timeout)

    def backend_status(self) -> BackendStatus:
        """The backend in use, probed with a harmless read; never raises."""
        try:
            backend, name, secure, problem = self._run(_inspect)
        except _Unavailable as error:
            return BackendStatus("unknown", False, False, str(error), guidance())
        if problem is None and _is_locked(backend):
            return BackendStatus(name, False, secure, self._locked_problem(backend), None, locked=True)
        locked = False
        if problem is None:
            try:
                self._call(backend, backend.get_password, *_PROBE)
            except _Unavailable as error:
                problem, locked = str(error), isinstance(error, _Locked)
        if problem is not None:
            return BackendStatus(name, False, secure, problem, guidance(), locked=locked)
        return BackendStatus(name, True, secure, None, None)

    def _usable_backend(
        self, profile: str, provider: ProviderName | None, needed: str
    ) -> KeyringBackend:
        """The keyring backend, or CredentialsError saying why it cannot be used for ``needed``
        (a provider's credentials, or with None the team ledger's password)."""
        status = self.backend_status()
        if not status.usable:
            example = "PGPASSWORD" if provider is None else env_variable(profile, provider, FIELDS[provider][-1])
            fixes = f".\n{guidance(example)}" if status.guidance else ""
            raise CredentialsError(f"{needed}: {status.problem}{fixes}")
        return _effective(keyring.get_keyring())

    # -- the encrypted file's passphrase ---------------------------------------------------

    def _keyring_exists(self, backend: KeyringBackend) -> bool:
        """Whether the encrypted file holds a keyring yet (the backend's own test)."""
        try:
            return self._run(backend._check_file)
        except _Unavailable as error:
            raise CredentialsError(f"cannot read the encrypted keyring: {error}") from None

    def _locked_problem(self, backend: KeyringBackend) -> str:
        try:
            exists = self._keyring_exists(backend)
        except CredentialsError as error:
            return str(error)
        path = _home_relative(backend.file_path)
        if not exists:
            return f"no encrypted keyring yet: `refund-tui credentials set` creates {path}"
        return (
            f"the encrypted keyring {path} is locked: its passphrase is asked on the terminal "
            "when refund-tui starts with a profile that needs it (`refund-tui --profile NAME`)"
        )

    def _no_keyring_yet(self) -> bool:
        try:
            locked = self.locked_keyring()
        except CredentialsError:
            return False
        return locked is not None and locked.new

    def locked_keyring(self) -> LockedKeyring | None:
        """The encrypted-file keyring in use while it waits for its passphrase, else None."""
        try:
            backend = self._run(_effective, keyring.get_keyring())
        except _Unavailable:
            return None
        if not _is_locked(backend):
            return None
        return LockedKeyring(_home_relative(backend.file_path), new=not self._keyring_exists(backend))

    def unlock(self, passphrase: str) -> None:
        """Give the encrypted-file keyring its passphrase (creating the keyring when it is new).

        Derives the key here, in the caller's thread and without a timeout: it is local work
        that takes a second or more, and no prompt can appear. CredentialsError when wrong.
        """
        backend = _effective(keyring.get_keyring())
        if not _is_encrypted_file(backend):
            return
        if not passphrase.strip():
            raise CredentialsError("the keyring passphrase cannot be empty")
        try:
            backend.keyring_key = passphrase
        except Exception as error:
            del backend.keyring_key  # a wrong passphrase must not stay behind
            if isinstance(error, ValueError):
                raise CredentialsError("wrong passphrase for the encrypted keyring") from None
            problem = _describe_failure(error).replace(passphrase, "…")
            raise CredentialsError(f"cannot open the encrypted keyring: {problem}") from None

    # -- public -------------------------------------------------------------------------

    def needs_keyring(
        self, profile: str, provider: ProviderName, fields: tuple[str, ...] | None = None
    ) -> bool:
        """Whether reading these fields (default: the API credentials) needs the keyring."""
        fields = fields or FIELDS[provider]
        return len(self._from_env(profile, provider, fields)) < len(fields)

    def get(
        self, profile: str, provider: ProviderName, *, fields: tuple[str, ...] | None = None
    ) -> dict[str, Secret]:
        """The provider's API credentials (or the named ``fields``); CredentialsError naming
        what is missing."""
        fields = fields or FIELDS[provider]
        values = self._from_env(profile, provider, fields)
        missing = [field for field in fields if field not in values]
        if missing:
            needed = f"{provider.value} credentials for profile '{profile}'"
            backend = self._usable_backend(profile, provider, f"cannot read the {needed}")
            service = service_name(profile, provider)
            for field in missing:
                try:
                    value = self._call(backend, backend.get_password, service, field)
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

    def check_writable(self, profile: str, provider: ProviderName | None) -> None:
        """Write and remove a probe entry: CredentialsError if the keyring cannot store (ask
        for secrets only after this). ``provider`` None: for the team ledger's password."""
        what = "team ledger password" if provider is None else f"{provider.value} credentials"
        needed = f"cannot store the {what} for profile '{profile}'"
        backend = self._usable_backend(profile, provider, needed)
        try:
            self._call(backend, backend.set_password, *_PROBE, "probe")
            self._call(backend, _delete_if_present, backend, *_PROBE)
        except _Unavailable as error:
            raise CredentialsError(f"{needed}: {error}") from None

    def set(self, profile: str, provider: ProviderName, values: dict[str, str]) -> None:
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
        backend = self._usable_backend(profile, provider, needed)
        service = service_name(profile, provider)
        for field, value in cleaned.items():
            try:
                self._call(backend, backend.set_password, service, field, value, secrets=(value,))
            except _Unavailable as error:
                raise CredentialsError(f"{needed}: {error}") from None

    def delete(self, profile: str, provider: ProviderName) -> None:
        """Remove the provider's fields from the keyring (absent fields are fine)."""
        needed = f"cannot delete the {provider.value} credentials for profile '{profile}'"
        backend = self._usable_backend(profile, provider, needed)
        service = service_name(profile, provider)
        for field in stored_fields(provider):
            try:
                self._call(backend, _delete_if_present, backend, service, field)
            except _Unavailable as error:
                raise CredentialsError(f"{needed}: {error}") from None

    # -- the team ledger's password -----------------------------------------------------

    def ledger_password(self, profile: str) -> Secret | None:
        """The profile's team-ledger password from the keyring, None when none is stored;
        CredentialsError when the keyring cannot be read."""
        needed = f"cannot read the team ledger password for profile '{profile}'"
        backend = self._usable_backend(profile, None, needed)
        try:
            value = self._call(backend, backend.get_password, ledger_service(profile), LEDGER_PASSWORD)
        except _Unavailable as error:
            raise CredentialsError(f"{needed}: {error}") from None
        return Secret(value) if value else None

    def set_ledger_password(self, profile: str, value: str) -> None:
        """Store the profile's team-ledger password (kept as typed: a password may hold spaces)."""
        if not value:
            raise CredentialsError(f"{LEDGER_PASSWORD} cannot be empty")
        needed = f"cannot store the team ledger password for profile '{profile}'"
        backend = self._usable_backend(profile, None, needed)
        try:
            self._call(backend, backend.set_password, ledger_service(profile), LEDGER_PASSWORD, value,
                       secrets=(value,))  # fmt: skip
        except _Unavailable as error:
            raise CredentialsError(f"{needed}: {error}") from None

    def delete_ledger_password(self, profile: str) -> None:
        needed = f"cannot delete the team ledger password for profile '{profile}'"
        backend = self._usable_backend(profile, None, needed)
        try:
            self._call(backend, _delete_if_present, backend, ledger_service(profile), LEDGER_PASSWORD)
        except _Unavailable as error:
            raise CredentialsError(f"{needed}: {error}") from None

    def ledger_password_status(self, profile: str) -> FieldStatus:
        """Whether the keyring holds the profile's team-ledger password (never any of it: a
        password's ends are part of it, unlike an API key's); never raises."""
        try:
            value = self.ledger_password(profile)
        except CredentialsError as error:
            return FieldStatus(LEDGER_PASSWORD, "unreadable", None, str(error).split("\n")[0])
        if value is None:
            return FieldStatus(LEDGER_PASSWORD, "missing")
        return FieldStatus(LEDGER_PASSWORD, "keyring")

    def status(self, profile: str, provider: ProviderName) -> list[FieldStatus]:
        """Each field's state and masked value; never raises."""
        fields = stored_fields(provider)
        values = self._from_env(profile, provider, fields)
        found = {field: FieldStatus(field, "env", mask(value)) for field, value in values.items()}
        missing = [field for field in fields if field not in found]
        if missing:
            found.update(self._keyring_status(profile, provider, missing))
        return [found[field] for field in fields]

    def _keyring_status(
        self, profile: str, provider: ProviderName, fields: list[str]
    ) -> dict[str, FieldStatus]:
        backend_status = self.backend_status()
        if not backend_status.usable:
            if backend_status.locked and self._no_keyring_yet():
                return {field: FieldStatus(field, "missing") for field in fields}
            state = "locked" if backend_status.locked else "unreadable"
            return {field: FieldStatus(field, state, None, backend_status.problem) for field in fields}
        backend = _effective(keyring.get_keyring())
        service = service_name(profile, provider)
        found = {}
        for field in fields:
            try:
                value = self._call(backend, backend.get_password, service, field)
            except _Locked as error:
                found[field] = FieldStatus(field, "locked", None, str(error))
            except _Unavailable as error:
                found[field] = FieldStatus(field, "unreadable", None, str(error))
            else:
                found[field] = (
                    FieldStatus(field, "keyring", mask(value)) if value else FieldStatus(field, "missing")
                )
        return found

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
