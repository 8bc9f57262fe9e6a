"""Who recorded a row and from where (PCI DSS 10.2.2): one set of columns for every table a
person's action writes (events today; approvals, claims and notes as they land).

- ``recorded_by``: the authenticated role. On PostgreSQL the database login (``session_user``,
  set by a trigger whatever the client sends: ``postgres_schema._identity``); on SQLite, which
  has no logins, the OS account in ``client_account`` stands for it.
- ``client_account``, ``client_host``, ``client_ssh``: the OS account (from the password
  database, never ``$USER``), host and SSH client of the process that wrote the row, as
  reported by that process (``Operator.current()``).

A table gains them with ``client_columns(table)`` in its migration (both dialects) and fills
them with ``client_fields(ledger.client)`` in its INSERT; time, outcome and the attempt it
concerns are the table's own columns.
"""

from __future__ import annotations

from refund_tui.core.operator import Operator

CLIENT_COLUMNS = ("client_account", "client_host", "client_ssh")


def client_columns(table: str) -> tuple[str, ...]:
    """Migration statements adding the client columns to ``table`` (SQLite and PostgreSQL)."""
    return tuple(f"ALTER TABLE {table} ADD COLUMN {column} TEXT" for column in CLIENT_COLUMNS)


def client_fields(client: Operator) -> dict[str, str | None]:
    """The client columns' values for a row written by ``client``."""
    return dict(zip(CLIENT_COLUMNS, (client.name, client.hostname, client.ssh_client), strict=True))
