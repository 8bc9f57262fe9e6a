"""Config: paths, the built-in sandbox profile, strict validation with readable errors."""

from __future__ import annotations

import os
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from refund_tui import config
from refund_tui.config import ConfigError, load_config, paths, sandbox_url
from refund_tui.core.models import ProviderName
from refund_tui.core.webhooks import NOVASEND_SCHEME, DigestEncoding, SignedContent

LIVE = """
default_profile = "prod"

[recovery]
flag_after_hours = 12

[tracking]
concurrency = 4
interval_seconds = 5

[keys]
refund = "ctrl+r"

[profiles.prod]
environment = "live"

[profiles.prod.vesicash]
base_url = "https://api.mor.vesicash.com/"
timeout_seconds = 20

[profiles.prod.novasend]
base_url = "https://business.novasend.app"

[profiles.staging]
environment = "sandbox"

[profiles.staging.vesicash]
base_url = "http://localhost:8080/vesicash"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, "utf-8")
    return path


def test_home_variable_moves_config_and_data(monkeypatch, tmp_path):
    monkeypatch.setenv("REFUND_TUI_HOME", str(tmp_path))
    found = paths()
    assert found.config_file == tmp_path / "config" / "config.toml"
    assert found.ledger_file("prod") == tmp_path / "data" / "ledger-prod.sqlite3"
    assert found.sandbox_state_file.parent == tmp_path / "data"


def test_platform_directories_without_home(monkeypatch, tmp_path):
    monkeypatch.delenv("REFUND_TUI_HOME", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    found = paths()
    assert found.config_dir == tmp_path / "xdg-config" / "refund-tui"
    assert found.data_dir == tmp_path / "xdg-data" / "refund-tui"


def test_missing_file_means_defaults(tmp_path):
    loaded = load_config(tmp_path / "absent.toml")
    assert list(loaded.profiles) == ["sandbox"]
    sandbox = loaded.profile(None)
    assert (sandbox.name, sandbox.environment) == ("sandbox", "sandbox")
    assert sandbox.refunds_enabled and sandbox.uses_simulator
    assert (sandbox.vesicash, sandbox.novasend, sandbox.is_live) == (None, None, False)
    assert loaded.flag_after == timedelta(hours=24)
    assert (loaded.tracking_concurrency, loaded.tracking_interval, loaded.keys) == (8, 2, {})


def test_default_path_comes_from_paths(monkeypatch, tmp_path):
    monkeypatch.setenv("REFUND_TUI_HOME", str(tmp_path))
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.toml").write_text("[tracking]\nconcurrency = 3\n")
    assert load_config().tracking_concurrency == 3


def test_live_profile_and_settings(tmp_path):
    loaded = load_config(write(tmp_path, LIVE))
    assert list(loaded.profiles) == ["sandbox", "prod", "staging"]
    prod = loaded.profile(None)
    assert (prod.name, prod.is_live, prod.refunds_enabled, prod.uses_simulator) == (
        "prod", True, False, False,
    )  # fmt: skip
    assert prod.vesicash.base_url == "https://api.mor.vesicash.com"
    assert prod.vesicash.timeout_seconds == 20
    assert prod.vesicash.refund_window is None
    assert prod.novasend.timeout_seconds == 30
    assert prod.novasend.refund_window == timedelta(days=7)
    staging = loaded.profile("staging")
    assert (staging.is_live, staging.refunds_enabled, staging.novasend) == (False, False, None)
    assert loaded.flag_after == timedelta(hours=12)
    assert (loaded.tracking_concurrency, loaded.tracking_interval) == (4, 5)
    assert loaded.keys == {"refund": "ctrl+r"}


def test_documented_example_is_valid(tmp_path):
    example = config.__doc__.split("Example ``config.toml``::", 1)[1]
    loaded = load_config(write(tmp_path, textwrap.dedent(example)))
    assert list(loaded.profiles) == ["sandbox", "prod"]
    assert loaded.profile("prod").novasend.refund_window == timedelta(days=7)
    assert loaded.profile("prod").webhook_schemes == config.DEFAULT_SCHEMES


def test_webhook_signing_settings(tmp_path):
    text = LIVE_VESICASH + (
        'base_url = "https://v.example"\n[profiles.prod.vesicash.webhook]\n'
        'header = "Mor-Signature"\nsigned = "timestamp.body"\nencoding = "base64"\n'
        'timestamp_header = "X-Timestamp"\ntolerance_seconds = 60\n'
    )
    schemes = load_config(write(tmp_path, text)).profile("prod").webhook_schemes
    vesicash = schemes[ProviderName.VESICASH]
    assert (vesicash.header, vesicash.signed, vesicash.encoding) == (
        "Mor-Signature", SignedContent.TIMESTAMP_BODY, DigestEncoding.BASE64,
    )  # fmt: skip
    assert (vesicash.timestamp_header, vesicash.tolerance) == ("X-Timestamp", timedelta(seconds=60))
    assert not vesicash.compact_fallback
    assert schemes[ProviderName.NOVASEND] == NOVASEND_SCHEME
    assert load_config(write(tmp_path, "")).profile("sandbox").webhook_schemes == config.DEFAULT_SCHEMES


def test_unknown_profile_lists_the_known_ones(tmp_path):
    loaded = load_config(write(tmp_path, LIVE))
    known = r"\(known: sandbox, prod, staging\)"
    with pytest.raises(ConfigError, match=rf"no profile named 'qa' {known}"):
        loaded.profile("qa")


LIVE_NOVASEND = '[profiles.prod]\nenvironment = "live"\n[profiles.prod.novasend]\n'
LIVE_VESICASH = '[profiles.prod]\nenvironment = "live"\n[profiles.prod.vesicash]\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[tracking]\ninterval_seconds = 1\n",
            "tracking.interval_seconds: Input should be greater than or equal to 2 (got 1)",
        ),
        ("[tracking]\nconcurency = 3\n", "tracking.concurency: unknown setting"),
        (
            '[recovery]\nflag_after_hours = "soon"\n',
            "recovery.flag_after_hours: Input should be a valid number",
        ),
        ('default_profile = "prod"\n', "default_profile 'prod' is not a profile (known: sandbox)"),
        (
            LIVE_NOVASEND + 'base_url = "http://novasend.example"\n',
            "profiles.prod: novasend.base_url must use https in a live profile",
        ),
        (
            '[profiles.prod]\nenvironment = "live"\nrefunds_enabled = "yes"\n',
            "profiles.prod.refunds_enabled: Input should be a valid boolean",
        ),
        (
            '[profiles.prod]\nenvironment = "production"\n',
            "profiles.prod.environment: Input should be 'sandbox' or 'live'",
        ),
        ('[profiles.prod]\nenvironment = "live"\n', "profiles.prod: configure at least one provider"),
        (
            LIVE_VESICASH + 'base_url = "https://v.example"\nrefund_window_days = 3\n',
            "profiles.prod.vesicash.refund_window_days: unknown setting",
        ),
        (
            LIVE_VESICASH + 'base_url = "api.vesicash.com"\n',
            "profiles.prod.vesicash.base_url: must be an http(s) URL",
        ),
        ('[profiles.sandbox]\nenvironment = "sandbox"\n', "'sandbox' is built in"),
        ('[profiles."Prod EU"]\nenvironment = "live"\n', "profile name 'Prod EU'"),
        ('[keys]\nrefund = ""\n', "keys.refund: String should have at least 1 character"),
        ("default_profile = \n", "not valid TOML"),
        (
            LIVE_VESICASH + 'base_url = "https://v.example"\nwebhook = { signed = "raw" }\n',
            "profiles.prod.vesicash.webhook.signed: Input should be 'body' or 'timestamp.body'",
        ),
        (
            LIVE_VESICASH + 'base_url = "https://v.example"\nwebhook = { header = "X Sig" }\n',
            "profiles.prod.vesicash.webhook.header: must be an HTTP header name",
        ),
        (
            LIVE_VESICASH + 'base_url = "https://v.example"\nwebhook = { tolerance_seconds = 0 }\n',
            "profiles.prod.vesicash.webhook.tolerance_seconds: Input should be greater than 0",
        ),
        (
            LIVE_VESICASH + 'base_url = "https://v.example"\ntimeout_seconds = 0.001\n',
            "profiles.prod.vesicash.timeout_seconds: Input should be greater than or equal to 1",
        ),
        (
            LIVE_VESICASH + 'base_url = "https://v.example"\ntimeout_seconds = inf\n',
            "profiles.prod.vesicash.timeout_seconds: Input should be less than or equal to 300 (got inf)",
        ),
        (
            "[tracking]\ninterval_seconds = nan\n",
            "tracking.interval_seconds: Input should be less than or equal to 3600 (got nan)",
        ),
    ],
)
def test_errors_name_the_file_and_the_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)


def test_a_config_that_is_not_a_regular_file_is_never_read(tmp_path):
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)  # reading it would wait for a writer forever
    for path in (tmp_path, fifo, Path("/dev/zero")):
        with pytest.raises(ConfigError, match="the config file is not a regular file"):
            load_config(path)


def test_unreadable_file(tmp_path):
    path = tmp_path / "config.toml"
    path.write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(path)


def test_sandbox_url(monkeypatch):
    monkeypatch.delenv(config.SANDBOX_URL_VARIABLE, raising=False)
    assert sandbox_url() is None
    monkeypatch.setenv(config.SANDBOX_URL_VARIABLE, " http://127.0.0.1:8765/ ")
    assert sandbox_url() == "http://127.0.0.1:8765"
    bad_urls = ("127.0.0.1:8765", "http://127.0.0.1", "http://host:port", "http://h:1/x", "ftp://h:1")
    for bad in bad_urls:
        monkeypatch.setenv(config.SANDBOX_URL_VARIABLE, bad)
        with pytest.raises(ConfigError, match="must look like http://HOST:PORT"):
            sandbox_url()


def with_ledger(value: str) -> str:
    return f'[profiles.prod]\nenvironment = "live"\nledger = {value}\n[profiles.prod.novasend]\nbase_url = "https://n.example"\n'


def test_a_profile_ledger_is_an_sqlite_file_by_default_a_path_or_a_postgresql_url(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    default = load_config(write(tmp_path, with_ledger('"~/team/refunds.sqlite3"').replace("ledger = ", "# ")))
    assert (default.profile("prod").ledger_url, default.profile("prod").ledger_path) == (None, None)
    on_file = load_config(write(tmp_path, with_ledger('"~/team/refunds.sqlite3"'))).profile("prod")
    assert on_file.ledger_path == tmp_path / "team" / "refunds.sqlite3" and on_file.ledger_url is None
    url = "postgresql://ama@db.internal:5432/refunds?sslmode=verify-full&connect_timeout=5"
    on_postgres = load_config(write(tmp_path, with_ledger(f'"{url}"'))).profile("prod")
    assert (on_postgres.ledger_url, on_postgres.ledger_path) == (url, None)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('"postgresql://ama:hunter2@db/refunds"', "must not contain a password: use ~/.pgpass"),
        ('"postgresql://db/refunds?password=hunter2"', "must not contain a password"),
        ('"postgresql:///refunds"', "must name the database host"),
        ('"postgresql://ama@db/refunds?sslmode=maybe"', "sslmode must be one of disable, allow"),
        ('"postgresql://ama@db/refunds?options=-csearch_path=x"', "unknown connection parameter 'options'"),
        ('"postgresql://ama@db:port/refunds"', "has an invalid port"),
        ('"mysql://ama:hunter2@db/refunds"', "must be a postgresql:// URL or a file path"),
        ('"ledgers/refunds.sqlite3"', "a ledger file path must be absolute or start with ~"),
        ('""', "String should have at least 1 character"),
    ],
)
def test_a_bad_ledger_setting_is_one_line_without_its_password(tmp_path, value, message):
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, with_ledger(value)))
    text = str(caught.value)
    assert f"profiles.prod.ledger: {message}" in text
    assert "hunter2" not in text and "\n" not in text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://ama:hunter2@db:5432/refunds?sslmode=require", "postgresql://ama:***@db:5432/refunds?sslmode=require"),
        ("postgresql://db/refunds?password=hunter2&sslmode=require", "postgresql://db/refunds?password=***&sslmode=require"),
        ("host=db password=hunter2 user=ama", "host=db password=*** user=ama"),
        ("postgresql://ama@db/refunds", "postgresql://ama@db/refunds"),
    ],
)
def test_database_urls_are_shown_with_the_password_masked(url, shown):
    assert config.masked_url(url) == shown


def test_usual_settle_time_per_provider(tmp_path):
    """How long refunds usually take to settle: a setting per provider, checked for range."""
    text = LIVE_VESICASH + 'base_url = "https://v.example"\nusual_settle_minutes = 45\n'
    usual = load_config(write(tmp_path, text)).profile("prod").usual_settle
    assert usual == {
        ProviderName.VESICASH: timedelta(minutes=45),
        ProviderName.NOVASEND: config.DEFAULT_USUAL_SETTLE,
    }
    sandbox = load_config(write(tmp_path, "")).profile("sandbox").usual_settle
    assert set(sandbox.values()) == {config.SANDBOX_USUAL_SETTLE}
    with pytest.raises(ConfigError, match="usual_settle_minutes: Input should be greater than 0"):
        load_config(write(tmp_path, LIVE_VESICASH + 'base_url = "https://v.example"\nusual_settle_minutes = 0\n'))


RULES = '[profiles.prod.approval]\nabove = { GHS = "500", XOF = 100000 }\nexpires_hours = 12\n' \
        '[profiles.prod.limits]\nper_operator_daily = { GHS = "5,000" }\n'


def test_approval_rules_and_daily_limits_are_read_for_a_team_ledger(tmp_path):
    from refund_tui.core.money import Money

    text = with_ledger('"postgresql://ama@db.internal:5432/refunds"') + RULES
    rules = load_config(write(tmp_path, text)).profile("prod").rules
    assert rules.above == {"GHS": Money(50000, "GHS"), "XOF": Money(100000, "XOF")}
    assert (rules.expires_hours, rules.daily_limit) == (12, {"GHS": Money(500000, "GHS")})
    assert load_config(write(tmp_path, with_ledger('"postgresql://ama@db/r"'))).profile("prod").rules is None


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        (RULES, "profiles.prod: approval rules and daily limits need a team ledger"),
        ('[profiles.prod.approval]\nabove = { GHS = "5.001" }\n', "above: GHS = '5.001': GHS allows at most 2 decimals"),
        ('[profiles.prod.approval]\nabove = { GHX = "5" }\n', "'GHX' is not a currency code refund-tui knows"),
        ('[profiles.prod.approval]\nabove = {}\n', "above: Dictionary should have at least 1 item"),
        ('[profiles.prod.approval]\nabove = { GHS = "5" }\nexpires_hours = 0\n', "expires_hours: Input should be greater than or equal to 1"),
        ('[profiles.prod.limits]\nper_operator = { GHS = "5" }\n', "per_operator"),
    ],
)
def test_bad_approval_rules_are_one_line(tmp_path, rules, message):
    ledger = '"~/refunds.sqlite3"' if rules is RULES else '"postgresql://ama@db/r"'
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as caught:
        load_config(write(tmp_path, with_ledger(ledger) + rules))
    assert "\n" not in str(caught.value)
