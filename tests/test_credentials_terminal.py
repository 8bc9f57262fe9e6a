"""The encrypted-file keyring (keyrings.cryptfile) for real: the CLI and the console driven
through a pseudo-terminal, as an operator on a headless SSH host uses them.

No secret typed here may appear in anything the processes print.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keyring
import pexpect
import pytest
from keyrings.cryptfile.cryptfile import CryptFileKeyring
from keyrings.cryptfile.escape import escape

from refund_tui.core.credentials import CredentialsError, CredentialStore, service_name
from refund_tui.core.models import ProviderName

PASSPHRASE = "correct horse battery staple"
PUBLIC = "vsc_pub_TERMINALtest0001"
SECRET = "vsc_sec_TERMINALtest0002"
TYPED = (PASSPHRASE, PUBLIC, SECRET)
UNLOCK = r"Unlocking the encrypted keyring ~/share/python_keyring/cryptfile_pass.cfg\s+Keyring passphrase \(hidden\): "

CONFIG = """
[profiles.staging]
environment = "sandbox"
refunds_enabled = true

[profiles.staging.vesicash]
base_url = "{url}"
"""


@pytest.fixture
def host(tmp_path: Path, sandbox) -> dict[str, str]:
    """The environment of an operator's shell on a host with no Secret Service: a fresh home
    whose config has a `staging` profile on the test simulator; keyring picks its backend."""
    home = tmp_path / "home"
    (home / "config").mkdir(parents=True)
    (home / "config" / "config.toml").write_text(CONFIG.format(url=sandbox.vesicash_url))
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("REFUND_TUI_", "DBUS_", "PYTHON_KEYRING", "XDG_"))
    }
    env.update(
        HOME=str(tmp_path),
        XDG_DATA_HOME=str(tmp_path / "share"),
        XDG_CONFIG_HOME=str(tmp_path / "xdg-config"),
        REFUND_TUI_HOME=str(home),
        TERM="xterm-256color",
    )
    return env


def keyring_file(env: dict[str, str]) -> Path:
    return Path(env["XDG_DATA_HOME"]) / "python_keyring" / "cryptfile_pass.cfg"


@pytest.fixture(scope="module")
def filled_keyring(tmp_path_factory) -> Path:
    """An encrypted keyring holding staging's Vesicash keys, made once (each key derivation
    costs a second or more); tests copy it."""
    backend = CryptFileKeyring()
    backend.file_path = str(tmp_path_factory.mktemp("keyring") / "cryptfile_pass.cfg")
    backend.keyring_key = PASSPHRASE
    backend.set_password(service_name("staging", ProviderName.VESICASH), "public_key", PUBLIC)
    backend.set_password(service_name("staging", ProviderName.VESICASH), "secret_key", SECRET)
    return Path(backend.file_path)


@pytest.fixture
def stored(host, filled_keyring) -> dict[str, str]:
    """``host`` with staging's Vesicash keys already in its encrypted keyring."""
    keyring_file(host).parent.mkdir(parents=True)
    shutil.copy(filled_keyring, keyring_file(host))
    return host


def spawn(env: dict[str, str], *args: str) -> pexpect.spawn:
    return pexpect.spawn(
        sys.executable, ["-m", "refund_tui", *args], env=env, encoding="utf-8",
        timeout=60, dimensions=(24, 80),
    )


def finish(child: pexpect.spawn) -> tuple[str, int]:
    """Everything the process printed after the last expect, and its exit code."""
    child.expect(pexpect.EOF)
    child.close()
    return child.before, child.exitstatus


def assert_nothing_typed_shown(*texts: str) -> None:
    for text in texts:
        for typed in TYPED:
            assert typed not in text


def set_credentials(env: dict[str, str], *, new: bool) -> str:
    child = spawn(env, "credentials", "set", "--profile", "staging", "--provider", "vesicash")
    seen = []
    if new:
        child.expect("Creating the encrypted keyring ~/share/python_keyring/cryptfile_pass.cfg")
        child.expect(r"Choose its passphrase \(hidden\): ")
        child.sendline(PASSPHRASE)
        child.expect("Type the passphrase again: ")
    else:
        child.expect(UNLOCK)
    seen.append(child.before)
    child.sendline(PASSPHRASE)
    child.expect("Deriving the key")
    child.expect(r"vesicash public_key \(hidden\): ")
    seen.append(child.before)
    child.sendline(PUBLIC)
    child.expect(r"vesicash secret_key \(hidden\): ")
    child.sendline(SECRET)
    child.expect("stored public_key, secret_key for staging/vesicash in the keyring")
    seen.append(child.before)
    rest, code = finish(child)
    assert code == 0, rest
    seen.append(rest)
    assert_nothing_typed_shown(*seen)
    return "".join(seen)


def status(env: dict[str, str], passphrase: str | None = PASSPHRASE) -> tuple[str, int]:
    child = spawn(env, "credentials", "status", "--profile", "staging", "--provider", "vesicash")
    child.expect(UNLOCK)
    child.sendline(passphrase)
    out, code = finish(child)
    assert_nothing_typed_shown(out)
    return out, code


def test_set_status_delete_on_a_new_encrypted_keyring(host):
    set_credentials(host, new=True)
    stored = keyring_file(host)
    assert stored.stat().st_mode & 0o777 == 0o600
    assert_nothing_typed_shown(stored.read_text())

    out, code = status(host)
    assert code == 0, out
    assert "CryptFileKeyring (usable)" in out
    assert "public_key     keyring    vsc_…0001" in out
    assert "secret_key     keyring    vsc_…0002" in out
    assert "webhook_secret missing" in out

    child = spawn(host, "credentials", "delete", "--profile", "staging", "--provider", "vesicash")
    child.expect(UNLOCK)
    child.sendline(PASSPHRASE)
    out, code = finish(child)
    assert code == 0 and "deleted credentials for staging/vesicash" in out

    out, code = status(host)
    assert code == 1
    assert "public_key     missing" in out and "secret_key     missing" in out


def test_a_second_set_asks_the_passphrase_once_and_a_wrong_one_three_times_is_refused(stored):
    host = stored
    set_credentials(host, new=False)

    child = spawn(host, "credentials", "status", "--profile", "staging", "--provider", "vesicash")
    seen = []
    child.expect(UNLOCK)
    for attempt in range(3):
        if attempt:
            child.expect(r"Keyring passphrase \(hidden\): ")
        seen.append(child.before)
        child.sendline("not the passphrase")
    out, code = finish(child)
    seen.append(out)
    assert code == 1
    assert "refused: wrong passphrase for the encrypted keyring" in out
    assert "".join(seen).count("wrong passphrase") == 3
    assert "not the passphrase" not in "".join(seen)


def test_without_a_terminal_the_keyring_reports_locked_and_nothing_is_asked(stored):
    host = stored
    args = [sys.executable, "-m", "refund_tui", "credentials"]
    target = ["--profile", "staging", "--provider", "vesicash"]

    result = subprocess.run([*args, "status", *target], env=host, capture_output=True,
                            text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert result.returncode == 1
    assert "CryptFileKeyring (locked)" in result.stdout
    assert "public_key     locked" in result.stdout
    assert "its passphrase is asked on the terminal when refund-tui starts" in result.stdout

    result = subprocess.run([*args, "set", *target], env=host, capture_output=True,
                            text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert result.returncode == 1
    assert "is locked and there is no terminal to ask its passphrase on" in result.stderr
    assert "public_key" not in result.stderr  # refused before any secret was asked


def test_set_refuses_an_unknown_or_demo_profile_before_any_prompt(host):
    for profile, message, exit_code in [("nope", "no profile named 'nope'", 2),
                                        ("sandbox", "uses the simulator's demo credentials", 1)]:
        child = spawn(host, "credentials", "set", "--profile", profile, "--provider", "vesicash")
        out, code = finish(child)
        assert code == exit_code and message in out and "assphrase" not in out
    assert not keyring_file(host).exists()

    result = subprocess.run(
        [sys.executable, "-m", "refund_tui", "credentials", "status", "--profile", "sandbox",
         "--provider", "novasend"],
        env=host, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60,
    )
    assert result.returncode == 0
    assert "uses the simulator's demo credentials" in result.stdout
    assert "api_key        demo" in result.stdout


def test_a_plaintext_backend_is_refused_before_any_secret_is_asked(host):
    host["PYTHON_KEYRING_BACKEND"] = "keyrings.cryptfile.file.PlaintextKeyring"
    child = spawn(host, "credentials", "set", "--profile", "staging", "--provider", "vesicash")
    out, code = finish(child)
    assert code == 1
    assert "keeps secrets in plain text" in out and "(hidden)" not in out


def test_the_console_asks_the_passphrase_on_the_terminal_once(stored):
    """The console suspends itself to ask on the plain terminal (not from a thread behind
    its screen), then opens the profile with the unlocked keyring."""
    host = stored
    child = spawn(host, "--profile", "staging")
    child.expect_exact("\x1b[?1049h")  # the console starts...
    child.expect(UNLOCK)  # ...and gives the terminal back for the passphrase
    assert "\x1b[?1049l" in child.before
    child.sendline(PASSPHRASE)
    child.expect("Deriving the key")
    child.expect("REFUNDS ENABLED")  # the banner of an opened session
    seen = child.before
    child.sendcontrol("q")
    out, code = finish(child)
    assert code == 0
    assert "could not open" not in seen + out and "LOCKED" not in seen + out
    assert seen.count("Keyring passphrase") == 0 and out.count("Keyring passphrase") == 0
    assert (Path(host["REFUND_TUI_HOME"]) / "data" / "ledger-staging.sqlite3").exists()
    assert_nothing_typed_shown(seen, out)


def test_the_console_with_a_wrong_passphrase_says_why_it_cannot_open(stored):
    child = spawn(stored, "--profile", "staging")
    child.expect(UNLOCK)
    for attempt in range(3):
        if attempt:
            child.expect(r"Keyring passphrase \(hidden\): ")
        child.sendline("not the passphrase")
    child.expect("wrong passphrase for the encrypted")  # shown in the console, not a traceback
    child.sendcontrol("q")
    out, code = finish(child)
    assert code == 0 and "Traceback" not in out


@pytest.fixture
def cryptfile(tmp_path, monkeypatch):
    """A real CryptFileKeyring in a temporary data directory, installed for this test."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    previous = keyring.get_keyring()
    backend = CryptFileKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


def test_key_derivation_is_not_cut_off_by_the_keyring_timeout(cryptfile):
    store = CredentialStore(timeout=0.01, environ={})
    assert store.locked_keyring().new
    store.unlock(PASSPHRASE)  # creates the keyring: derives the key, no timeout
    store.set("staging", ProviderName.VESICASH, {"public_key": PUBLIC, "secret_key": SECRET})
    assert store.get("staging", ProviderName.VESICASH)["secret_key"].reveal() == SECRET


def test_locked_missing_and_unreadable_are_told_apart(cryptfile):
    store = CredentialStore(environ={})
    store.unlock(PASSPHRASE)
    store.set("staging", ProviderName.VESICASH, {"public_key": PUBLIC})
    states = [field.state for field in store.status("staging", ProviderName.VESICASH)]
    assert states == ["keyring", "missing", "missing"]

    reopened = CryptFileKeyring()
    keyring.set_keyring(reopened)
    assert [field.state for field in store.status("staging", ProviderName.VESICASH)] == ["locked"] * 3
    with pytest.raises(CredentialsError, match="is locked"):
        store.get("staging", ProviderName.VESICASH)
    with pytest.raises(CredentialsError, match="wrong passphrase"):
        store.unlock("not the passphrase")
    assert store.locked_keyring() is not None and not store.locked_keyring().new

    # an entry moved under another name no longer decrypts (the name is bound to it)
    config = configparser.RawConfigParser()
    config.read(reopened.file_path)
    reference = config.get(escape("keyring-setting"), escape("password reference"))
    config.set(escape(service_name("staging", ProviderName.VESICASH)), escape("public_key"), reference)
    with open(reopened.file_path, "w") as file:
        config.write(file)
    store.unlock(PASSPHRASE)
    fields = store.status("staging", ProviderName.VESICASH)
    assert [field.state for field in fields] == ["unreadable", "missing", "missing"]
    assert "keyring failed" in fields[0].problem


SECRET_SERVICE_MISSING = [
    name for name in ("dbus-run-session", "gnome-keyring-daemon") if shutil.which(name) is None
]


@pytest.mark.skipif(
    bool(SECRET_SERVICE_MISSING),
    reason=f"{' and '.join(SECRET_SERVICE_MISSING)} not installed "
    "(Debian: apt-get install gnome-keyring dbus-x11)",
)
def test_the_secret_service_under_dbus_run_session(host, tmp_path):
    """gnome-keyring in its own D-Bus session, unlocked as the README says; then locked."""
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    host.update(XDG_RUNTIME_DIR=str(runtime), GK_PASSWORD="gnome keyring password")
    unlock = 'printf %s "$GK_PASSWORD" | gnome-keyring-daemon --unlock --components=secrets >/dev/null'
    lock = (f"{sys.executable} -c 'import secretstorage as s; "
            "s.get_default_collection(s.dbus_init()).lock()'")
    target = "--profile staging --provider vesicash"

    def in_session(*commands: str) -> list[str]:
        return ["dbus-run-session", "--", "sh", "-c", "; ".join((unlock, *commands))]

    command = in_session(f"exec {sys.executable} -m refund_tui credentials set {target}")
    child = pexpect.spawn(command[0], command[1:], env=host, encoding="utf-8", timeout=60)
    child.expect(r"vesicash public_key \(hidden\): ")
    child.sendline(PUBLIC)
    child.expect(r"vesicash secret_key \(hidden\): ")
    child.sendline(SECRET)
    child.expect("stored public_key, secret_key for staging/vesicash in the keyring")
    out, code = finish(child)
    assert code == 0

    status = f"exec {sys.executable} -m refund_tui credentials status {target}"
    result = subprocess.run(in_session(status), env=host, capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=60)
    assert result.returncode == 0, result.stdout
    assert "SecretService.Keyring (usable)" in result.stdout
    assert "secret_key     keyring    vsc_…0002" in result.stdout
    assert not keyring_file(host).exists()  # the Secret Service, not the encrypted file

    result = subprocess.run(in_session(lock, status), env=host, capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=60)
    assert result.returncode == 1
    assert "SecretService.Keyring (locked)" in result.stdout
    assert "public_key     locked" in result.stdout
    assert_nothing_typed_shown(result.stdout, result.stderr, out)


def test_status_and_the_console_create_no_keyring(host):
    """Only `credentials set` creates the encrypted keyring; status says what is missing."""
    result = subprocess.run(
        [sys.executable, "-m", "refund_tui", "credentials", "status", "--profile", "staging",
         "--provider", "vesicash"],
        env=host, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60,
    )
    assert result.returncode == 1
    assert "CryptFileKeyring (not created yet)" in result.stdout
    assert "no encrypted keyring yet: `refund-tui credentials set` creates" in result.stdout
    assert "public_key     missing" in result.stdout
    child = spawn(host, "credentials", "status", "--profile", "staging", "--provider", "vesicash")
    out, code = finish(child)
    assert code == 1 and "assphrase" not in out
    assert not keyring_file(host).exists()


def test_nothing_typed_ahead_is_echoed_or_reaches_the_shell(stored):
    """An operator who types while keys are derived: the text is not shown, and the shell
    that started refund-tui does not run it afterwards."""
    host = stored
    shell = pexpect.spawn("bash", ["--norc", "--noprofile"], env={**host, "PS1": "$ "},
                          encoding="utf-8", timeout=60, dimensions=(24, 80))
    shell.expect_exact("$ ")
    shell.sendline(f"{sys.executable} -m refund_tui credentials set --profile staging "
                   "--provider vesicash --webhook-secret")
    shell.expect(UNLOCK)
    shell.sendline(PASSPHRASE)
    shell.expect(r"vesicash webhook_secret \(hidden\): ")
    shell.sendline("whsec_TERMINALtest0003")
    shell.expect("Storing")
    shell.sendline("echo TYPED-$((40+2))")  # typed ahead while the key is derived
    shell.expect("stored webhook_secret for staging/vesicash")
    shell.expect_exact("$ ")
    seen = shell.before
    shell.sendline("echo DONE-$((1+1))")
    shell.expect("DONE-2")
    seen += shell.before
    shell.sendline("exit")
    shell.expect(pexpect.EOF)
    assert "TYPED" not in seen and "42" not in seen
    assert "whsec_TERMINALtest0003" not in seen
