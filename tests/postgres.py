"""A PostgreSQL server for tests: the one at ``REFUND_TUI_TEST_POSTGRES`` (default: the
project's machines' server, trust auth), else a throwaway cluster from the system's binaries,
else a skip naming what to install (a failure under ``CI=true``).

Each test session works in a database of its own, dropped at the end; each ledger a test
opens lives in a schema of its own in it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
URL_VARIABLE = "REFUND_TUI_TEST_POSTGRES"
INSTALL_HINT = (
    "no PostgreSQL server answers at {url} and no initdb/pg_ctl found: install PostgreSQL "
    "(apt-get install postgresql) or set REFUND_TUI_TEST_POSTGRES to a server"
)


class NoPostgres(Exception):
    """Neither a server nor the binaries to start one."""


def answers(url: str) -> bool:
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error:
        return False
    return True


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Cluster:
    """A throwaway cluster (``throwaway_cluster``): stopped and started again at will, on the
    same port, so a test can take the server away from a running client."""

    def __init__(self, binaries: Path, root: Path, run_as: list[str], port: int) -> None:
        self._binaries, self._root, self._run_as, self.port = binaries, root, run_as, port
        #: Its superuser (trust).
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        self.running = False

    def run(self, *command: str) -> None:
        subprocess.run([*self._run_as, *command], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        if self.running:
            return
        options = f"-p {self.port} -k {self._root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.run(str(self._binaries / "pg_ctl"), "-D", str(self._root / "data"), "-o", options,
                 "-w", "-l", str(self._root / "log"), "start")  # fmt: skip
        self.running = True

    def stop(self) -> None:
        """Stop at once, as a crash would: every client's connection is cut."""
        if not self.running:
            return
        self.run(str(self._binaries / "pg_ctl"), "-D", str(self._root / "data"), "-m", "immediate",
                 "-w", "stop")  # fmt: skip
        self.running = False


#: pg_hba.conf of a cluster that checks passwords: every role but the superuser sends one.
PASSWORD_HBA = """local all all trust
host all postgres 127.0.0.1/32 trust
host all all 127.0.0.1/32 scram-sha-256
"""


@contextmanager
def throwaway_cluster(binaries: Path, *, passwords: bool = False) -> Iterator[Cluster]:
    """A cluster in a temporary directory on a free loopback port (socket in that directory);
    run as an unprivileged user when we are root (initdb refuses root). Trust auth, or with
    ``passwords`` every role but the superuser authenticates by password (SCRAM)."""
    root = Path(tempfile.mkdtemp(prefix="refund-tui-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:
        user = "postgres" if _user_exists("postgres") else "nobody"
        account = pwd.getpwnam(user)
        os.chown(root, account.pw_uid, account.pw_gid)
        run_as = ["runuser", "-u", user, "--"]
    cluster = Cluster(binaries, root, run_as, _free_port())
    try:
        cluster.run(str(binaries / "initdb"), "-D", str(root / "data"), "-A", "trust", "-U", "postgres",
                    "--no-sync")  # fmt: skip
        if passwords:
            (root / "data" / "pg_hba.conf").write_text(PASSWORD_HBA, "utf-8")
        cluster.start()
        try:
            yield cluster
        finally:
            cluster.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def binaries() -> Path | None:
    """Where the system's initdb and pg_ctl are, if anywhere."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@contextmanager
def server() -> Iterator[str]:
    """The admin URL of a server for this session; raises NoPostgres with the hint."""
    url = os.environ.get(URL_VARIABLE, "").strip() or DEFAULT_URL
    if answers(url):
        yield url
        return
    found = binaries()
    if found is None:
        raise NoPostgres(INSTALL_HINT.format(url=url))
    with throwaway_cluster(found) as started:
        yield started.url


def with_database(url: str, dbname: str, user: str | None = None) -> str:
    """``url`` (a postgresql:// URL) on another database, as another role when given."""
    parts = urlsplit(url)
    netloc = parts.netloc if user is None else f"{user}@{parts.netloc.rpartition('@')[2]}"
    return urlunsplit(parts._replace(netloc=netloc, path=f"/{dbname}"))


@contextmanager
def session_database(admin_url: str) -> Iterator[str]:
    """A fresh database (and the login roles made in it) for one test session, then dropped."""
    name = f"refund_tui_test_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
            for (role,) in conn.execute(
                "SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (f"{name}%",)
            ).fetchall():
                with contextlib.suppress(psycopg.Error):
                    conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def login_role(database_url: str, suffix: str, *groups: str) -> str:
    """A login role named after the session database, in ``groups``; its URL."""
    dbname = urlsplit(database_url).path.lstrip("/")
    name = f"{dbname}_{suffix}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
        for group in groups:
            conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(name)))
    return with_database(database_url, dbname, user=name)
