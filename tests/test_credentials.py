"""Credentials: keyring + environment, unusable and hanging backends, plain text refused."""

from __future__ import annotations

import time

import keyring
import pytest
from keyring.backends import chainer, fail, null
from secretstorage.exceptions import SecretServiceNotAvailableException

from refund_tui.core.credentials import (
    FIELDS,
    WEBHOOK_SECRET,
    CredentialsError,
    CredentialStore,
    env_variable,
    service_name,
)
from refund_tui.core.models import ProviderName
from refund_tui.core.secret import Secret, mask
from tests.memory_keyring import (
    BrokenKeyring,
    EchoingKeyring,
    FailingKeyring,
    HangingKeyring,
    MemoryKeyring,
    PlaintextKeyring,
)

VESICASH = ProviderName.VESICASH
NOVASEND = ProviderName.NOVASEND
PUBLIC = "pk_live_1234567890abcdef"
SECRET = "sk_live_feedfacecafe9f3a"


class EmptyChainer(chainer.ChainerBackend):
    """A chainer that found nothing to chain (kept out of keyring's own detection)."""

    backends = []
    viable = False


@pytest.fixture
def use_backend():
    """Install a keyring backend for one test, restoring the previous one afterwards."""
    previous = keyring.get_keyring()
    yield keyring.set_keyring
    keyring.set_keyring(previous)


@pytest.fixture
def memory(use_backend) -> MemoryKeyring:
    backend = MemoryKeyring()
    use_backend(backend)
    return backend


def test_set_get_delete_round_trip(memory):
    store = CredentialStore(environ={})
    store.set("prod", VESICASH, {"public_key": f" {PUBLIC}\n", "secret_key": SECRET})

    assert memory.entries == {
        ("refund-tui/prod/vesicash", "public_key"): PUBLIC,
        ("refund-tui/prod/vesicash", "secret_key"): SECRET,
    }
    values = store.get("prod", VESICASH)
    assert {field: secret.reveal() for field, secret in values.items()} == {
        "public_key": PUBLIC,
        "secret_key": SECRET,
    }

    store.delete("prod", VESICASH)
    store.delete("prod", VESICASH)  # absent fields are fine
    assert memory.entries == {}


def test_environment_wins_over_keyring_and_is_reported(memory):
    memory.set_password(service_name("prod", VESICASH), "public_key", PUBLIC)
    memory.set_password(service_name("prod", VESICASH), "secret_key", "sk_from_keyring_0000")
    store = CredentialStore(environ={"REFUND_TUI_PROD_VESICASH_SECRET_KEY": SECRET})

    assert store.get("prod", VESICASH)["secret_key"].reveal() == SECRET
    statuses = {status.field: status for status in store.status("prod", VESICASH)}
    assert statuses["secret_key"].state == "env"
    assert statuses["public_key"].state == "keyring"
    assert statuses["secret_key"].masked == "sk_l…9f3a"
    assert statuses["public_key"].masked == "pk_l…cdef"


def test_environment_alone_needs_no_keyring(use_backend):
    use_backend(fail.Keyring())
    environ = {
        env_variable("prod", NOVASEND, field): f"{field}-value-123456" for field in FIELDS[NOVASEND]
    }
    values = CredentialStore(environ=environ).get("prod", NOVASEND)
    assert values["api_client"].reveal() == "api_client-value-123456"


def test_env_variable_names():
    assert env_variable("prod", VESICASH, "secret_key") == "REFUND_TUI_PROD_VESICASH_SECRET_KEY"
    assert env_variable("prod-eu", NOVASEND, "api_key") == "REFUND_TUI_PROD_EU_NOVASEND_API_KEY"


def test_missing_fields_say_how_to_fix(memory):
    memory.set_password(service_name("prod", NOVASEND), "api_key", "key-1234567890")
    with pytest.raises(CredentialsError) as caught:
        CredentialStore(environ={}).get("prod", NOVASEND)
    message = str(caught.value)
    assert "api_client" in message and "api_key," not in message
    assert "refund-tui credentials set --profile prod --provider novasend" in message
    assert "REFUND_TUI_PROD_NOVASEND_API_CLIENT" in message
    assert [status.state for status in CredentialStore(environ={}).status("prod", NOVASEND)] == [
        "keyring",
        "missing",
        "missing",
    ]


def test_the_webhook_secret_is_stored_apart_and_never_needed_by_the_api_clients(memory):
    store = CredentialStore(environ={})
    store.set("prod", VESICASH, {"public_key": "pub-1234567890", "secret_key": "sec-1234567890"})
    assert set(store.get("prod", VESICASH)) == {"public_key", "secret_key"}
    with pytest.raises(CredentialsError) as caught:
        store.get("prod", VESICASH, fields=(WEBHOOK_SECRET,))
    message = str(caught.value)
    assert "refund-tui credentials set --profile prod --provider vesicash --webhook-secret" in message
    assert "REFUND_TUI_PROD_VESICASH_WEBHOOK_SECRET" in message
    store.set("prod", VESICASH, {WEBHOOK_SECRET: " whsec-abcdef123456 "})
    secret = store.get("prod", VESICASH, fields=(WEBHOOK_SECRET,))[WEBHOOK_SECRET]
    assert secret.reveal() == "whsec-abcdef123456"
    shown = {status.field: status for status in store.status("prod", VESICASH)}
    assert shown[WEBHOOK_SECRET].state == "keyring"
    assert "abcdef123456" not in (shown[WEBHOOK_SECRET].masked or "")
    store.delete("prod", VESICASH)
    assert [status.state for status in store.status("prod", VESICASH)] == ["missing"] * 3


def test_the_webhook_secret_comes_from_the_environment_too(memory):
    store = CredentialStore(environ={"REFUND_TUI_PROD_NOVASEND_WEBHOOK_SECRET": "whsec-from-env-1234"})
    secret = store.get("prod", NOVASEND, fields=(WEBHOOK_SECRET,))[WEBHOOK_SECRET]
    assert secret.reveal() == "whsec-from-env-1234"


@pytest.mark.parametrize(
    ("backend", "problem", "state"),
    [
        (fail.Keyring(), "no keyring backend is available", "unreadable"),
        (null.Keyring(), "keyring is disabled", "unreadable"),
        (EmptyChainer(), "nothing to chain", "unreadable"),
        (FailingKeyring(), "locked", "locked"),
        (BrokenKeyring(), "RuntimeError: argon2_cffi package required", "unreadable"),
        (
            FailingKeyring(SecretServiceNotAvailableException("Unable to autolaunch dbus")),
            "D-Bus",
            "unreadable",
        ),
    ],
)
def test_unusable_backend_is_explained_not_raised(use_backend, backend, problem, state):
    use_backend(backend)
    store = CredentialStore(environ={})

    status = store.backend_status()
    assert not status.usable
    assert problem in status.problem
    fixes = ("dbus-run-session", "gnome-keyring-daemon --unlock", "keyrings.cryptfile", "REFUND_TUI_")
    assert all(fix in status.guidance for fix in fixes)
    assert [field.state for field in store.status("prod", VESICASH)] == [state] * 3

    with pytest.raises(CredentialsError) as caught:
        store.get("prod", VESICASH)
    assert problem in str(caught.value)
    assert "REFUND_TUI_PROD_VESICASH_SECRET_KEY" in str(caught.value)
    with pytest.raises(CredentialsError):
        store.set("prod", VESICASH, {"secret_key": SECRET})


def test_hanging_keyring_times_out_readably(use_backend):
    backend = HangingKeyring()
    use_backend(backend)
    store = CredentialStore(timeout=0.2, environ={})
    try:
        started = time.monotonic()
        status = store.backend_status()
        with pytest.raises(CredentialsError) as caught:
            store.get("prod", VESICASH)
        elapsed = time.monotonic() - started
    finally:
        backend.release.set()
    assert not status.usable
    assert "did not answer within 0.2 s" in status.problem
    assert "did not answer within 0.2 s" in str(caught.value)
    assert elapsed < 2


@pytest.mark.parametrize("profile", ["prod", "staging"])
def test_plaintext_backend_refused_for_every_profile(use_backend, profile):
    backend = PlaintextKeyring()
    use_backend(backend)
    store = CredentialStore(environ={})

    status = store.backend_status()
    assert not status.usable and "plain text" in status.problem
    with pytest.raises(CredentialsError) as caught:
        store.set(profile, VESICASH, {"secret_key": SECRET})
    assert "plain text" in str(caught.value) and f"'{profile}'" in str(caught.value)
    assert backend.entries == {}
    with pytest.raises(CredentialsError, match="plain text"):
        store.get(profile, VESICASH)
    assert [field.state for field in store.status(profile, VESICASH)] == ["unreadable"] * 3


def test_a_chain_is_used_through_its_secure_member_only(use_backend):
    """keyring chains plain-text backends too once keyrings.cryptfile is installed: refund-tui
    reads and writes only the chain's secure member; a chain of plain text only is refused."""
    secure, plain = MemoryKeyring(), PlaintextKeyring()
    plain.set_password(service_name("prod", VESICASH), "secret_key", "sk_plaintext_copy_0000")

    class Chain(EmptyChainer):
        backends = [secure, plain]

    class PlainChain(EmptyChainer):
        backends = [plain]

    use_backend(Chain())
    store = CredentialStore(environ={})
    assert store.backend_status().name.endswith("MemoryKeyring")
    assert [field.state for field in store.status("prod", VESICASH)] == ["missing"] * 3
    store.set("prod", VESICASH, {"public_key": PUBLIC, "secret_key": SECRET})
    assert store.get("prod", VESICASH)["secret_key"].reveal() == SECRET
    assert plain.entries == {(service_name("prod", VESICASH), "secret_key"): "sk_plaintext_copy_0000"}

    use_backend(PlainChain())
    assert "plain text" in CredentialStore(environ={}).backend_status().problem


def test_memory_backend_counts_as_secure(memory):
    status = CredentialStore(environ={}).backend_status()
    assert (status.usable, status.secure, status.problem) == (True, True, None)
    assert status.name.endswith("MemoryKeyring")


def test_set_refuses_unknown_and_empty_fields(memory):
    store = CredentialStore(environ={})
    with pytest.raises(CredentialsError, match="no field api_key"):
        store.set("prod", VESICASH, {"api_key": "x"})
    with pytest.raises(CredentialsError, match="secret_key cannot be empty"):
        store.set("prod", VESICASH, {"secret_key": "  "})
    assert memory.entries == {}


def test_no_secret_in_any_text(use_backend):
    texts = []
    memory = MemoryKeyring()
    use_backend(memory)
    store = CredentialStore(environ={"REFUND_TUI_PROD_VESICASH_PUBLIC_KEY": PUBLIC})
    store.set("prod", VESICASH, {"secret_key": SECRET})
    values = store.get("prod", VESICASH)
    texts += [str(values), repr(values), f"{values['secret_key']}"]
    texts.append(str(store.status("prod", VESICASH)))

    use_backend(EchoingKeyring())
    with pytest.raises(CredentialsError) as caught:
        store.set("prod", VESICASH, {"secret_key": SECRET})
    texts += [str(caught.value), repr(caught.value)]
    assert "cannot store" in str(caught.value)

    for text in texts:
        assert SECRET not in text and PUBLIC not in text
    assert "sk_l…9f3a" in " ".join(texts)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("sk_live_feedfacecafe9f3a", "sk_l…9f3a"),
        ("0123456789abcdef", "0123…cdef"),
        ("0123456789abcde", "…de (15 chars)"),
        ("short-key", "…ey (9 chars)"),
        ("abcde", "…de (5 chars)"),
        ("abcd", "(4 chars)"),
    ],
)
def test_secrets_under_16_characters_show_only_their_length_and_last_2(value, shown):
    assert mask(value) == shown
    assert repr(Secret(value)) == f"Secret({shown!r})"


def test_the_ledger_password_is_asked_only_for_a_team_ledger_and_alone(tmp_path, monkeypatch, memory):
    """``credentials set --ledger-password`` takes no provider (exit 2 with both or neither)
    and is refused, before any prompt, for a profile whose ledger is an SQLite file."""
    from click.testing import CliRunner

    from refund_tui.cli import main

    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.toml").write_text(
        '[profiles.prod]\nenvironment = "live"\n[profiles.prod.novasend]\nbase_url = "https://n.invalid"\n',
        "utf-8",
    )
    monkeypatch.setenv("REFUND_TUI_HOME", str(tmp_path))
    for args in ([], ["--provider", "novasend", "--ledger-password"]):
        misuse = CliRunner().invoke(main, ["credentials", "set", "--profile", "prod", *args])
        assert misuse.exit_code == 2
        assert "give --provider or --ledger-password (one of them)" in misuse.output
    solo = CliRunner().invoke(main, ["credentials", "set", "--profile", "prod", "--ledger-password"], input="x\nx\n")
    assert solo.exit_code == 1
    assert "profile 'prod' keeps its ledger in an SQLite file: only a team ledger" in solo.output
    assert memory.entries == {}
