"""In-memory keyring backends for tests: a working one and a few that fail like real ones."""

from __future__ import annotations

import threading

from keyring.backend import KeyringBackend
from keyring.errors import KeyringLocked, PasswordDeleteError, PasswordSetError


class MemoryKeyring(KeyringBackend):
    """A recommended (priority 1) backend that keeps entries in a dict.

    ``viable = False`` keeps these classes out of keyring's own backend detection, which
    would otherwise find them (keyring registers every subclass) and chain them.
    """

    priority = 1
    viable = False

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        try:
            del self.entries[(service, username)]
        except KeyError:
            raise PasswordDeleteError("not found") from None


class PlaintextKeyring(MemoryKeyring):
    """Stands in for keyrings.alt's PlaintextKeyring: same name, same low priority."""

    priority = 0.5


class HangingKeyring(MemoryKeyring):
    """Every call blocks until ``release`` is set, like a locked keyring over SSH."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def get_password(self, service: str, username: str) -> str | None:
        self.release.wait()
        return super().get_password(service, username)


class FailingKeyring(MemoryKeyring):
    """Every call raises ``error`` (a KeyringLocked by default)."""

    def __init__(self, error: Exception | None = None) -> None:
        super().__init__()
        self.error = error or KeyringLocked("Failed to unlock the collection!")

    def get_password(self, service: str, username: str) -> str | None:
        raise self.error

    def set_password(self, service: str, username: str, password: str) -> None:
        raise self.error


class EchoingKeyring(MemoryKeyring):
    """Refuses to store, and (badly) puts the value it was given into its error message."""

    def set_password(self, service: str, username: str, password: str) -> None:
        raise PasswordSetError(f"cannot store {password!r} for {username}")


class BrokenKeyring(MemoryKeyring):
    """A backend whose dependencies are missing: asking its priority raises, like cryptfile's."""

    @property
    def priority(self) -> float:
        raise RuntimeError("argon2_cffi package required")
