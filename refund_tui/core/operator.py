"""Who is at the keyboard: the OS account (from the password database), host and SSH client."""

from __future__ import annotations

import os
import pwd
import socket
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Operator:
    """The identity recorded on every refund attempt."""

    name: str
    uid: int
    hostname: str
    ssh_client: str | None

    @classmethod
    def current(cls, environ: Mapping[str, str] | None = None) -> Operator:
        """The effective user of this process.

        The name comes from the password database, never from ``$USER``/``$LOGNAME``, which
        anyone can set. ``environ`` (default ``os.environ``) is read only for the SSH client.
        """
        uid = os.geteuid()
        try:
            name = pwd.getpwuid(uid).pw_name
        except KeyError:
            name = f"uid-{uid}"
        return cls(
            name=name,
            uid=uid,
            hostname=socket.gethostname(),
            ssh_client=ssh_client(os.environ if environ is None else environ),
        )

    def __str__(self) -> str:
        where = f" via {self.ssh_client}" if self.ssh_client else ""
        return f"{self.name}@{self.hostname}{where}"


def ssh_client(environ: Mapping[str, str]) -> str | None:
    """``ip:port`` of the SSH client as sshd reports it, or None outside SSH."""
    for variable in ("SSH_CONNECTION", "SSH_CLIENT"):
        parts = environ.get(variable, "").split()
        if len(parts) >= 2:
            address, port = parts[0], parts[1]
            return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    return None
