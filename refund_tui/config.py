"""Where refund-tui keeps its files, and the profiles and settings in ``config.toml``.

Files live in the platform's user config and data directories (``refund-tui``);
``REFUND_TUI_HOME=/some/dir`` moves them to ``/some/dir/config`` and ``/some/dir/data``.
The built-in ``sandbox`` profile always exists and is the default: it talks to the embedded
simulator, or to ``REFUND_TUI_SANDBOX_URL=http://HOST:PORT`` when that is set. A missing
config file means every default below. Unknown keys are errors, so a typo never goes
unnoticed. Credentials never go in this file (see ``refund-tui credentials``).

Example ``config.toml``::

    # Profile used when none is given on the command line (default: "sandbox").
    default_profile = "sandbox"

    [recovery]
    flag_after_hours = 24        # unresolved refunds older than this (at most 24) go to manual reconciliation
    resend_quiet_minutes = 15    # a Vesicash refund of unknown outcome may be resent by an operator
                                 # once the payment record has shown none of it for this long

    [tracking]
    concurrency = 8              # status polls in flight at once
    interval_seconds = 2         # board refresh; at least 2

    [keys]                       # action id -> key, overriding the console's defaults
    "lookup.refund" = "r"

    [profiles.prod]
    environment = "live"         # "live", or "sandbox" for a provider's test system
    refunds_enabled = false      # profiles you define are read-only unless this is true
    # Where refunds are recorded. Absent: an SQLite file of this profile in the data directory.
    # A path: that SQLite file (a folder shared by a group is honoured). A PostgreSQL URL: the
    # team ledger (docs/TEAM.md); never a password here - ~/.pgpass, PGPASSWORD or a service file.
    ledger = "postgresql://ama@db.internal:5432/refunds?sslmode=verify-full"

    [profiles.prod.vesicash]
    base_url = "https://api.mor.vesicash.com"    # live profiles require https
    timeout_seconds = 30         # 1 to 300
    usual_settle_minutes = 30    # a refund pending or processing longer is shown as stuck

    [profiles.prod.vesicash.webhook]     # how notifications are signed (these are the defaults)
    header = "X-Vesicash-Signature"
    signed = "body"              # or "timestamp.body": HMAC of "<timestamp>.<raw body>"
    encoding = "hex"             # or "base64"
    timestamp_header = "X-Vesicash-Timestamp"
    tolerance_seconds = 300      # a signed timestamp further than this from our clock is refused

    [profiles.prod.novasend]
    base_url = "https://business.novasend.app"
    timeout_seconds = 30
    refund_window_days = 7       # Novasend refuses refunds of older payments

    # Team ledger only: written into the ledger by its owner's `refund-tui ledger setup`,
    # enforced there by the database for every client (docs/TEAM.md).
    [profiles.prod.approval]
    above = { GHS = "500", XOF = "100000" }  # refunds above these wait for a second person
    expires_hours = 24                       # an approval request not decided by then lapses
    [profiles.prod.limits]
    per_operator_daily = { GHS = "5000" }    # one role's refunds per UTC day, per currency
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import parse_qs, urlsplit

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from refund_tui.core.approvals import DEFAULT_EXPIRES_HOURS, ApprovalRules
from refund_tui.core.models import ProviderName
from refund_tui.core.money import MoneyError, minor_unit_table, parse_amount
from refund_tui.core.provider import ProviderSettings
from refund_tui.core.webhooks import (
    NOVASEND_SCHEME,
    VESICASH_SCHEME,
    DigestEncoding,
    SignatureScheme,
    SignedContent,
)

APP_NAME = "refund-tui"
SANDBOX_PROFILE = "sandbox"
HOME_VARIABLE = "REFUND_TUI_HOME"
SANDBOX_URL_VARIABLE = "REFUND_TUI_SANDBOX_URL"
_PROFILE_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_HEADER_NAME = re.compile(r"[A-Za-z0-9-]{1,64}")
_POSTGRES_SCHEMES = ("postgresql", "postgres")
#: Connection parameters a ledger URL may carry (libpq's names); never a password.
_LEDGER_PARAMETERS = frozenset(
    {"sslmode", "sslrootcert", "sslcert", "sslkey", "sslcrl", "connect_timeout",
     "target_session_attrs", "service", "passfile", "gssencmode", "application_name"}
)  # fmt: skip
_SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
DEFAULT_SCHEMES: dict[ProviderName, SignatureScheme] = {
    ProviderName.VESICASH: VESICASH_SCHEME,
    ProviderName.NOVASEND: NOVASEND_SCHEME,
}
#: How long a refund usually takes to settle; longer in pending/processing shows as stuck.
#: Neither provider publishes a settlement time (seeds, providers.md): mobile-money refunds
#: normally settle within minutes, so 30 minutes flags a stuck one well before a customer
#: calls back, without crying wolf over a slow operator. Per provider: ``usual_settle_minutes``.
DEFAULT_USUAL_SETTLE = timedelta(minutes=30)
#: The simulator settles in three ``settle_seconds`` (3 s by default): a minute is stuck.
SANDBOX_USUAL_SETTLE = timedelta(minutes=1)


class ConfigError(Exception):
    """The configuration cannot be used; the message names the file and the key."""


class UnknownProfile(ConfigError):
    """No profile has the name asked for; the message lists the known ones."""


_PASSWORD_PARAMETER = re.compile(r"(password=)[^&\s]*", re.IGNORECASE)


def masked_url(url: str) -> str:
    """A database URL as it may be shown: any password (in the authority or a parameter)
    replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is not None:
        user = parts.username or ""
        host = parts.netloc.rpartition("@")[2]
        parts = parts._replace(netloc=f"{user}:***@{host}")
    return _PASSWORD_PARAMETER.sub(r"\1***", parts.geturl())


@dataclass(frozen=True, slots=True)
class Paths:
    config_dir: Path
    data_dir: Path

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    def ledger_file(self, profile: str) -> Path:
        """Each profile keeps its own ledger: recovery and the board never mix accounts."""
        return self.data_dir / f"ledger-{profile}.sqlite3"

    @property
    def sandbox_state_file(self) -> Path:
        return self.data_dir / "sandbox-state.json"


def paths() -> Paths:
    """The config and data directories, honouring ``REFUND_TUI_HOME``."""
    home = os.environ.get(HOME_VARIABLE, "").strip()
    if home:
        root = Path(home).expanduser()
        if not root.is_absolute():
            raise ConfigError(
                f"{HOME_VARIABLE}={home} is a relative path: each working directory would get "
                "its own ledger; give an absolute path"
            )
        return Paths(config_dir=root / "config", data_dir=root / "data")
    return Paths(
        config_dir=platformdirs.user_config_path(APP_NAME),
        data_dir=platformdirs.user_data_path(APP_NAME),
    )


@dataclass(frozen=True, slots=True)
class Profile:
    """A named set of provider endpoints; ``vesicash``/``novasend`` None = not configured
    (for the built-in sandbox profile: decided at run time)."""

    name: str
    environment: Literal["sandbox", "live"]
    refunds_enabled: bool
    vesicash: ProviderSettings | None
    novasend: ProviderSettings | None
    #: How each provider signs its notifications.
    webhook_schemes: dict[ProviderName, SignatureScheme] = field(
        default_factory=lambda: dict(DEFAULT_SCHEMES)
    )
    #: The team ledger's PostgreSQL URL (no password), or None.
    ledger_url: str | None = None
    #: Where the SQLite ledger file is when not in the data directory (ignored with ledger_url).
    ledger_path: Path | None = None
    #: How long each provider's refunds usually take to settle (longer: stuck).
    usual_settle: dict[ProviderName, timedelta] = field(
        default_factory=lambda: dict.fromkeys(ProviderName, DEFAULT_USUAL_SETTLE)
    )
    #: Approval rules and daily limits its owner's ``ledger setup`` writes (team ledger only).
    rules: ApprovalRules | None = None

    @property
    def is_live(self) -> bool:
        return self.environment == "live"

    @property
    def uses_simulator(self) -> bool:
        """True for the built-in sandbox profile: endpoints come from the simulator."""
        return self.vesicash is None and self.novasend is None


@dataclass(frozen=True, slots=True)
class Config:
    profiles: dict[str, Profile]
    default_profile: str
    flag_after: timedelta
    resend_quiet: timedelta
    tracking_concurrency: int
    tracking_interval: float
    keys: dict[str, str]

    def profile(self, name: str | None) -> Profile:
        """The named profile, or the default one when ``name`` is None."""
        wanted = self.default_profile if name is None else name
        try:
            return self.profiles[wanted]
        except KeyError:
            known = ", ".join(self.profiles)
            raise UnknownProfile(f"no profile named '{wanted}' (known: {known})") from None


SANDBOX = Profile(
    name=SANDBOX_PROFILE,
    environment="sandbox",
    refunds_enabled=True,
    vesicash=None,
    novasend=None,
    usual_settle=dict.fromkeys(ProviderName, SANDBOX_USUAL_SETTLE),
)


# -- the file's schema ------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _WebhookSection(_Strict):
    header: str | None = None
    signed: Literal["body", "timestamp.body"] = "body"
    encoding: Literal["hex", "base64"] = "hex"
    timestamp_header: str = VESICASH_SCHEME.timestamp_header
    tolerance_seconds: Annotated[float, Field(gt=0, le=3600)] = 300

    @field_validator("header", "timestamp_header")
    @classmethod
    def _header(cls, value: str | None) -> str | None:
        if value is not None and not _HEADER_NAME.fullmatch(value):
            raise ValueError(f"must be an HTTP header name like X-Signature (got {value!r})")
        return value

    def scheme(self, default: SignatureScheme) -> SignatureScheme:
        return SignatureScheme(
            header=self.header or default.header,
            signed=SignedContent(self.signed),
            encoding=DigestEncoding(self.encoding),
            timestamp_header=self.timestamp_header,
            tolerance=timedelta(seconds=self.tolerance_seconds),
            compact_fallback=default.compact_fallback,
        )


class _ProviderSection(_Strict):
    base_url: str
    timeout_seconds: Annotated[float, Field(ge=1, le=300)] = 30.0
    usual_settle_minutes: Annotated[float, Field(gt=0, le=7 * 24 * 60)] = (
        DEFAULT_USUAL_SETTLE.total_seconds() / 60
    )
    webhook: _WebhookSection = _WebhookSection()

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must be an http(s) URL like https://api.example.com (got {value!r})")
        if parts.query or parts.fragment:
            raise ValueError(f"must not carry a query or fragment (got {value!r})")
        return value.strip().rstrip("/")

    def settings(self) -> ProviderSettings:
        return ProviderSettings(base_url=self.base_url, timeout_seconds=self.timeout_seconds)


class _NovasendSection(_ProviderSection):
    refund_window_days: Annotated[int, Field(ge=1, le=365)] = 7

    def settings(self) -> ProviderSettings:
        return ProviderSettings(
            base_url=self.base_url,
            timeout_seconds=self.timeout_seconds,
            refund_window=timedelta(days=self.refund_window_days),
        )


def check_ledger_url(value: str) -> str:
    """A PostgreSQL URL with a host and no password; ValueError naming what is wrong."""
    parts = urlsplit(value)
    if parts.password is not None or "password" in parse_qs(parts.query):
        raise ValueError(
            "must not contain a password: use ~/.pgpass, PGPASSWORD or a libpq service file"
        )
    try:
        parts.port
    except ValueError:
        raise ValueError(f"has an invalid port (got {masked_url(value)!r})") from None
    if not parts.hostname and "host" not in parse_qs(parts.query):
        raise ValueError(f"must name the database host, like postgresql://ROLE@HOST:5432/DB "
                         f"(got {value!r})")  # fmt: skip
    if parts.fragment:
        raise ValueError(f"must not carry a fragment (got {value!r})")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - _LEDGER_PARAMETERS - {"host"})
    if unknown:
        raise ValueError(f"unknown connection parameter {unknown[0]!r} (allowed: "
                         f"{', '.join(sorted(_LEDGER_PARAMETERS))})")  # fmt: skip
    for mode in query.get("sslmode", []):
        if mode not in _SSL_MODES:
            raise ValueError(f"sslmode must be one of {', '.join(_SSL_MODES)} (got {mode!r})")
    return value


_Amounts = Annotated[dict[str, str | int], Field(min_length=1)]


def _amounts(amounts: dict[str, str | int]) -> dict[str, str | int]:
    """Currency -> amount, each a known currency and an exact amount of it."""
    known = minor_unit_table()
    for currency, amount in amounts.items():
        if currency not in known:
            raise ValueError(f"{currency!r} is not a currency code refund-tui knows (e.g. GHS, XOF)")
        try:
            parse_amount(str(amount), currency)
        except MoneyError as error:
            raise ValueError(f"{currency} = {amount!r}: {error}") from None
    return amounts


class _Approval(_Strict):
    above: _Amounts
    expires_hours: Annotated[int, Field(ge=1, le=24 * 30)] = DEFAULT_EXPIRES_HOURS

    _above = field_validator("above")(_amounts)


class _Limits(_Strict):
    per_operator_daily: _Amounts

    _daily = field_validator("per_operator_daily")(_amounts)


class _Profile(_Strict):
    environment: Literal["sandbox", "live"]
    refunds_enabled: bool = False
    ledger: Annotated[str, Field(min_length=1)] | None = None
    vesicash: _ProviderSection | None = None
    novasend: _NovasendSection | None = None
    approval: _Approval | None = None
    limits: _Limits | None = None

    def rules(self) -> ApprovalRules | None:
        """The approval rules and daily limits this profile's owner writes into the ledger."""
        if self.approval is None and self.limits is None:
            return None

        def money(amounts: dict[str, str | int]) -> dict:
            return {currency: parse_amount(str(amount), currency) for currency, amount in amounts.items()}

        return ApprovalRules(
            above=money(self.approval.above) if self.approval else {},
            expires_hours=self.approval.expires_hours if self.approval else DEFAULT_EXPIRES_HOURS,
            daily_limit=money(self.limits.per_operator_daily) if self.limits else {},
        )

    @field_validator("ledger")
    @classmethod
    def _ledger(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if urlsplit(value).scheme in _POSTGRES_SCHEMES:
            return check_ledger_url(value)
        if "://" in value:
            raise ValueError(
                f"must be a postgresql:// URL or a file path (got {masked_url(value)!r})"
            )
        path = Path(value).expanduser()
        if not path.is_absolute():
            raise ValueError(f"a ledger file path must be absolute or start with ~ (got {value!r})")
        return str(path)

    @model_validator(mode="after")
    def _check(self) -> _Profile:
        configured = {"vesicash": self.vesicash, "novasend": self.novasend}
        if not any(configured.values()):
            raise ValueError("configure at least one provider: a [vesicash] or [novasend] table")
        if (self.approval or self.limits) and not _is_url(self.ledger):
            raise ValueError(
                "approval rules and daily limits need a team ledger: only PostgreSQL can enforce "
                'them for every operator; set ledger = "postgresql://ROLE@HOST:PORT/DB" (docs/TEAM.md)'
            )
        for provider, section in configured.items():
            if section and self.environment == "live" and not section.base_url.startswith("https:"):
                raise ValueError(
                    f"{provider}.base_url must use https in a live profile (got {section.base_url})"
                )
        return self


class _Recovery(_Strict):
    #: At most a day: providers may forget idempotency keys after that, so a resend could execute.
    flag_after_hours: Annotated[float, Field(gt=0, le=24)] = 24
    #: At least a minute: a request held by a slow provider must have had time to execute.
    resend_quiet_minutes: Annotated[float, Field(ge=1, le=24 * 60)] = 15


class _Tracking(_Strict):
    concurrency: Annotated[int, Field(ge=1, le=64)] = 8
    interval_seconds: Annotated[float, Field(ge=2, le=3600)] = 2


class _File(_Strict):
    default_profile: str = SANDBOX_PROFILE
    recovery: _Recovery = _Recovery()
    tracking: _Tracking = _Tracking()
    keys: dict[str, Annotated[str, Field(min_length=1)]] = {}
    profiles: dict[str, _Profile] = {}

    @field_validator("profiles", mode="before")
    @classmethod
    def _names(cls, profiles: object) -> object:
        for name in profiles if isinstance(profiles, dict) else ():
            if name == SANDBOX_PROFILE:
                raise ValueError(f"'{SANDBOX_PROFILE}' is built in; give your profile another name")
            if not _PROFILE_NAME.fullmatch(name):
                raise ValueError(
                    f"profile name {name!r}: use lower-case letters, digits, '-' or '_' "
                    "(at most 32, starting with a letter)"
                )
        return profiles

    @model_validator(mode="after")
    def _quiet_outlasts_every_request(self) -> _File:
        """A resend is never offered while the first request can still be waiting."""
        quiet = self.recovery.resend_quiet_minutes * 60
        for name, profile in self.profiles.items():
            if profile.vesicash is not None and quiet < 3 * profile.vesicash.timeout_seconds + 30:
                raise ValueError(
                    f"recovery.resend_quiet_minutes must be at least 3 x "
                    f"profiles.{name}.vesicash.timeout_seconds + 30 s "
                    f"({(3 * profile.vesicash.timeout_seconds + 30) / 60:g} min)"
                )
        return self

    @model_validator(mode="after")
    def _default_exists(self) -> _File:
        known = [SANDBOX_PROFILE, *self.profiles]
        if self.default_profile not in known:
            raise ValueError(
                f"default_profile '{self.default_profile}' is not a profile "
                f"(known: {', '.join(known)})"
            )
        return self


# -- loading ----------------------------------------------------------------------------


def load_config(path: Path | None = None) -> Config:
    """Read and validate ``config.toml`` (default: ``paths().config_file``)."""
    path = path or paths().config_file
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # a FIFO or a device would be read forever
            raise ConfigError(f"{path}: the config file is not a regular file")
        text = path.read_text("utf-8")
    except FileNotFoundError:
        text = ""
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read the config file: {error}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    try:
        parsed = _File.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(_describe(item) for item in error.errors())
        raise ConfigError(f"{path}: {problems}") from None
    return _build(parsed)


def _describe(error: dict) -> str:
    """One pydantic error as ``key.path: message``."""
    where = ".".join(str(part) for part in error["loc"]) or "top level"
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown setting"
    message = error["msg"].removeprefix("Value error, ")
    value = error.get("input")
    if isinstance(value, str):
        value = masked_url(value)  # a database URL's password never reaches a message
    if isinstance(value, str | int | float | bool) and "(got" not in message:
        message += f" (got {value!r})"
    return f"{where}: {message}"


def _build(parsed: _File) -> Config:
    profiles = {SANDBOX_PROFILE: SANDBOX}
    for name, section in parsed.profiles.items():
        configured = {
            provider: provider_section
            for provider, provider_section in (
                (ProviderName.VESICASH, section.vesicash),
                (ProviderName.NOVASEND, section.novasend),
            )
            if provider_section is not None
        }
        schemes = {
            provider: provider_section.webhook.scheme(DEFAULT_SCHEMES[provider])
            for provider, provider_section in configured.items()
        }
        usual_settle = {
            provider: timedelta(minutes=provider_section.usual_settle_minutes)
            for provider, provider_section in configured.items()
        }
        profiles[name] = Profile(
            name=name,
            environment=section.environment,
            refunds_enabled=section.refunds_enabled,
            vesicash=section.vesicash.settings() if section.vesicash else None,
            novasend=section.novasend.settings() if section.novasend else None,
            webhook_schemes={**DEFAULT_SCHEMES, **schemes},
            ledger_url=section.ledger if _is_url(section.ledger) else None,
            ledger_path=None if section.ledger is None or _is_url(section.ledger) else Path(section.ledger),
            usual_settle={**dict.fromkeys(ProviderName, DEFAULT_USUAL_SETTLE), **usual_settle},
            rules=section.rules(),
        )
    return Config(
        profiles=profiles,
        default_profile=parsed.default_profile,
        flag_after=timedelta(hours=parsed.recovery.flag_after_hours),
        resend_quiet=timedelta(minutes=parsed.recovery.resend_quiet_minutes),
        tracking_concurrency=parsed.tracking.concurrency,
        tracking_interval=parsed.tracking.interval_seconds,
        keys=dict(parsed.keys),
    )


def _is_url(ledger: str | None) -> bool:
    return ledger is not None and urlsplit(ledger).scheme in _POSTGRES_SCHEMES


def sandbox_url() -> str | None:
    """``REFUND_TUI_SANDBOX_URL`` as ``http://HOST:PORT`` (no trailing slash), or None.

    The simulator's providers are under ``<url>/vesicash`` and ``<url>/novasend``.
    """
    value = os.environ.get(SANDBOX_URL_VARIABLE, "").strip()
    if not value:
        return None
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in ("http", "https") or not parts.hostname or port is None or (
        parts.path.strip("/") or parts.query or parts.fragment
    ):
        raise ConfigError(
            f"{SANDBOX_URL_VARIABLE} must look like http://HOST:PORT (got {value!r})"
        )
    return f"{parts.scheme}://{parts.netloc}"
