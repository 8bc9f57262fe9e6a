"""Shared plumbing of the provider clients: requests, answers, wire models and errors.

This is the one place where a transport problem, an HTTP error or a body that cannot be
read becomes a ``ProviderError`` with an operator-readable message. Nothing here ever sees
a credential except as header values handed to httpx.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Annotated, TypeVar

import httpx
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from refund_tui.core.models import (
    ErrorCode,
    Payment,
    PaymentStatus,
    ProviderError,
    ProviderName,
    Refund,
    RefundStatus,
)
from refund_tui.core.money import Money, MoneyError
from refund_tui.core.secret import Secret
from refund_tui.core.text import is_printable, printable
from refund_tui.providers.base import ProviderSettings

log = logging.getLogger(__name__)

CREDENTIALS_HINT = "check `refund-tui credentials status`"
NOT_FOUND = "{provider} has no payment with reference {reference}"
OVER_BALANCE = (
    "The refund amount is more than what is left to refund on this payment (or not above zero)"
)
NO_BALANCE = "The merchant balance cannot cover this refund"

_REFUND_WORDS = {
    "pending": RefundStatus.PENDING,
    "queued": RefundStatus.PENDING,
    "processing": RefundStatus.PROCESSING,
    "successful": RefundStatus.COMPLETED,
    "success": RefundStatus.COMPLETED,
    "completed": RefundStatus.COMPLETED,
    "failed": RefundStatus.FAILED,
    "reversed": RefundStatus.REVERSED,
}
_PAYMENT_WORDS = {
    "successful": PaymentStatus.SUCCESSFUL,
    "success": PaymentStatus.SUCCESSFUL,
    "completed": PaymentStatus.SUCCESSFUL,
    "pending": PaymentStatus.PENDING,
    "processing": PaymentStatus.PENDING,
    "failed": PaymentStatus.FAILED,
    "expired": PaymentStatus.EXPIRED,
}


def refund_status(word: str) -> RefundStatus:
    """A provider's refund status word in the neutral vocabulary; UNKNOWN when unheard of."""
    return _REFUND_WORDS.get(word.strip().lower(), RefundStatus.UNKNOWN)


def payment_status(word: str) -> PaymentStatus:
    """A provider's payment status word in the neutral vocabulary; UNKNOWN when unheard of."""
    return _PAYMENT_WORDS.get(word.strip().lower(), PaymentStatus.UNKNOWN)


def e164(phone: str | None) -> str:
    """``+E.164`` from a provider's number written with or without ``+`` and separators."""
    digits = "".join(char for char in phone or "" if char.isdigit())
    return f"+{digits}" if digits else ""


def as_utc(moment: datetime) -> datetime:
    """An aware datetime; a naive one is taken to be UTC, as providers write times in UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]


class WireModel(BaseModel):
    """Base of every provider wire model: strict where declared, ignores everything else.

    No text from a provider keeps a terminal control: an identifier (a field named ``id`` or
    ``...reference``) that holds one is refused, as changing it could merge two refunds or
    poll the wrong one; any other text (names, reasons, messages) is made ``printable``.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    @field_validator("*", mode="after")
    @classmethod
    def _printable_text(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, str):
            return value
        if info.field_name == "id" or (info.field_name or "").endswith("reference"):
            if not is_printable(value):
                raise ValueError("an identifier cannot hold control or invisible characters")
            return value
        return printable(value)


Model = TypeVar("Model", bound=WireModel)


def display(provider: ProviderName) -> str:
    return provider.value.title()


def bad_response(
    provider: ProviderName, message: str, http_status: int | None = None
) -> ProviderError:
    return ProviderError(
        ErrorCode.BAD_RESPONSE, message, provider=provider, http_status=http_status
    )


def parse_wire(
    provider: ProviderName, model: type[Model], data: object, what: str = "answer"
) -> Model:
    """Validate a decoded answer (or notification: ``what``); a missing or invalid field
    becomes BAD_RESPONSE naming it."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        first = error.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "its body"
        if first["type"] == "missing":
            message = f"{display(provider)}'s {what} is missing '{where}'"
        else:
            message = f"{display(provider)}'s {what} has an invalid '{where}': {first['msg']}"
        raise bad_response(provider, message) from None


def notice_status(event: str, word: str) -> RefundStatus | None:
    """The refund status a ``refund.*`` notification reports; None for any other event or
    a status word we do not know (recorded as ignored, never acted on)."""
    if not event.startswith("refund."):
        return None
    status = refund_status(word)
    return None if status is RefundStatus.UNKNOWN else status


def wire_money(provider: ProviderName, amount: Decimal, currency: str) -> Money:
    """An amount from a provider's answer, exactly; too many decimals is BAD_RESPONSE."""
    try:
        return Money.from_major(amount, currency)
    except MoneyError as error:
        raise bad_response(
            provider, f"{display(provider)} sent an amount that cannot be used ({amount}: {error})"
        ) from None


def compact_json(body: Mapping[str, object]) -> str:
    """The one serialisation of a request body: stored in the ledger and sent byte for byte."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def refund_on(payment: Payment, refund_reference: str) -> Refund:
    """One refund from a payment record's refunds; absent is PAYMENT_NOT_FOUND."""
    for refund in payment.refunds:
        if refund.reference == refund_reference:
            return refund
    raise ProviderError(
        ErrorCode.PAYMENT_NOT_FOUND,
        f"{display(payment.provider)} shows no refund {refund_reference} "
        f"on payment {payment.reference}",
        provider=payment.provider,
    )


def _date_header(response: httpx.Response) -> datetime | None:
    """The answer's ``Date`` header as an aware datetime; None when absent or unreadable."""
    try:
        return as_utc(parsedate_to_datetime(response.headers["date"]))
    except (KeyError, TypeError, ValueError, IndexError):
        return None


def require_secrets(
    credentials: Mapping[str, Secret], names: tuple[str, ...], provider: ProviderName
) -> tuple[Secret, ...]:
    """The named credentials in order; a missing or empty one is UNAUTHORIZED, before any I/O."""
    for name in names:
        if not credentials.get(name):
            raise ProviderError(
                ErrorCode.UNAUTHORIZED,
                f"no {display(provider)} {name} is stored: {CREDENTIALS_HINT}",
                provider=provider,
            )
    return tuple(credentials[name] for name in names)


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay in seconds or an HTTP date)."""
    if not value:
        return None
    text = value.strip()
    try:
        return max(float(text), 0.0)
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max((as_utc(moment) - (now or datetime.now(UTC))).total_seconds(), 0.0)


@dataclass(frozen=True, slots=True)
class KnownError:
    """A documented provider error; ``message`` may use ``{provider}`` and ``{reference}``."""

    code: ErrorCode
    message: str


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """What a provider's error body says: the key it is known by, and its raw fields."""

    key: str | None
    raw_code: str | None
    raw_message: str | None

    @classmethod
    def read(cls, data: object, key_field: str) -> ErrorReply:
        """Both providers' error bodies carry ``code`` and ``message``; either may be absent."""
        if not isinstance(data, dict):
            return cls(None, None, None)
        fields = {name: _text(data.get(name)) for name in ("code", "message", key_field)}
        return cls(fields[key_field], fields["code"], fields["message"])


class ProviderHttp:
    """An httpx client bound to one provider's base URL, timeout and error vocabulary."""

    def __init__(
        self,
        provider: ProviderName,
        settings: ProviderSettings,
        *,
        error_key: str,
        known_errors: Mapping[str, KnownError],
    ) -> None:
        """``known_errors`` maps the error body's ``error_key`` field to documented errors."""
        self.provider = provider
        self.settings = settings
        #: The provider's clock as its last answer's ``Date`` header told it (None: no answer yet).
        self.server_time: datetime | None = None
        self._error_key = error_key
        self._known_errors = known_errors
        try:
            self._client = httpx.AsyncClient(
                base_url=settings.base_url, timeout=httpx.Timeout(settings.timeout_seconds)
            )
        except httpx.InvalidURL:
            raise ProviderError(
                ErrorCode.CONNECTION,
                f"the {self.name} base URL {settings.base_url!r} is not a valid URL",
                provider=provider,
            ) from None

    @property
    def name(self) -> str:
        return display(self.provider)

    def __repr__(self) -> str:
        return f"ProviderHttp({self.provider.value}, base_url={self.settings.base_url!r})"

    async def aclose(self) -> None:
        await self._client.aclose()

    async def call(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None = None,
        reference: str = "",
    ) -> object:
        """Send one request and return its decoded JSON answer, or raise ProviderError.

        ``reference`` is the payment the call is about, used in error messages.
        """
        started = time.perf_counter()
        try:
            response = await self._client.request(method, path, headers=headers, content=body)
        except (httpx.HTTPError, UnicodeEncodeError) as error:
            failure = self._transport_error(error)
            log.warning(
                "%s %s %s failed after %.0f ms: %s",
                self.provider.value,
                method,
                path,
                _ms(started),
                failure.code.value,
            )
            raise failure from None
        log.info(
            "%s %s %s -> %d in %.0f ms",
            self.provider.value,
            method,
            path,
            response.status_code,
            _ms(started),
        )
        self.server_time = _date_header(response) or self.server_time
        return self._answer(response, reference)

    def _error(self, code: ErrorCode, message: str, **fields: object) -> ProviderError:
        return ProviderError(code, message, provider=self.provider, **fields)

    def _transport_error(self, error: Exception) -> ProviderError:
        """A request that got no complete answer, classified; never the raw error."""
        if isinstance(error, (UnicodeEncodeError, httpx.LocalProtocolError)):
            # Their text quotes the offending header value, which may be a credential.
            return self._error(
                ErrorCode.UNAUTHORIZED,
                f"a {self.name} credential has characters that cannot be sent in a header: "
                f"{CREDENTIALS_HINT}",
            )
        raw = printable(f"{type(error).__name__}: {error}")
        if isinstance(error, httpx.TimeoutException):
            message = f"{self.name} did not answer within {self.settings.timeout_seconds:g} s"
            return self._error(ErrorCode.TIMEOUT, message, raw_message=raw)
        if isinstance(error, httpx.DecodingError):
            message = f"{self.name}'s answer could not be decoded"
            return self._error(ErrorCode.BAD_RESPONSE, message, raw_message=raw)
        if isinstance(error, httpx.ConnectError):
            message = f"could not connect to {self.name} at {self._origin()}"
        elif isinstance(error, httpx.RemoteProtocolError):
            message = f"{self.name} closed the connection before answering completely"
        elif isinstance(error, (httpx.ReadError, httpx.WriteError)):
            message = f"the connection to {self.name} broke before the answer arrived"
        else:
            message = f"the request to {self.name} failed"
            raw = type(error).__name__
        return self._error(ErrorCode.CONNECTION, message, raw_message=raw)

    def _origin(self) -> str:
        url = self._client.base_url
        return f"{url.scheme}://{url.netloc.decode('ascii', 'replace')}"

    def _answer(self, response: httpx.Response, reference: str) -> object:
        data, problem = _decode(response)
        if response.is_success and problem is None:
            return data
        raise self._status_error(response, data, problem, reference)

    def _status_error(
        self, response: httpx.Response, data: object, problem: str | None, reference: str
    ) -> ProviderError:
        """What a non-2xx status or an unreadable body means for the operator."""
        status = response.status_code
        wait = retry_after(response.headers.get("retry-after"))
        if status == 401:
            message = f"credentials refused by {self.name}: {CREDENTIALS_HINT}"
            return self._failure(ErrorCode.UNAUTHORIZED, message, status, data)
        if status == 429:
            later = f"; retry in {wait:.0f} s" if wait is not None else ""
            message = f"{self.name} is limiting the request rate{later}"
            return self._failure(ErrorCode.RATE_LIMITED, message, status, data, retry_after=wait)
        if status >= 500:
            shape = f", {problem}" if problem else ""
            message = f"{self.name} had a server error (HTTP {status}{shape})"
            return self._failure(ErrorCode.SERVER_ERROR, message, status, data, retry_after=wait)
        if problem is not None:
            return bad_response(
                self.provider, f"{self.name} answered with {problem} (HTTP {status})", status
            )
        return self._rejection(status, data, reference)

    def _failure(
        self, code: ErrorCode, message: str, status: int, data: object, **fields: object
    ) -> ProviderError:
        reply = ErrorReply.read(data, self._error_key)
        return self._error(
            code,
            message,
            http_status=status,
            raw_code=reply.raw_code,
            raw_message=reply.raw_message,
            **fields,
        )

    def _rejection(self, status: int, data: object, reference: str) -> ProviderError:
        """A 4xx with a JSON error body: a documented error, else judged by HTTP status."""
        reply = ErrorReply.read(data, self._error_key)
        known = self._known_errors.get(_key(reply.key)) if reply.key else None
        if known is not None:
            code, template = known.code, known.message
        elif status == 404:
            code, template = ErrorCode.PAYMENT_NOT_FOUND, NOT_FOUND
        elif status == 409:
            code, template = ErrorCode.DUPLICATE_REFUND, "{provider} reports a duplicate{quoted}"
        elif status == 422:
            code, template = ErrorCode.IDEMPOTENCY_KEY, "{provider} refused the key{quoted}"
        else:
            code, template = ErrorCode.REJECTED, "{provider} refused the request{quoted}"
        quoted = f': "{reply.raw_message}"' if reply.raw_message else f" (HTTP {status})"
        message = template.format(provider=self.name, reference=reference or "?", quoted=quoted)
        return self._failure(code, message, status, data)


def _text(value: object) -> str | None:
    return None if value is None or isinstance(value, (dict, list)) else printable(str(value))


def _key(text: str) -> str:
    """How documented errors are matched: case-insensitive, no trailing full stop."""
    return text.strip().rstrip(".").lower()


def _decode(response: httpx.Response) -> tuple[object, str | None]:
    """The JSON body (numbers with decimals as Decimal), or None and what is wrong with it."""
    text = response.text
    if not text.strip():
        return None, "an empty body"
    content_type = response.headers.get("content-type", "")
    if "html" in content_type or text.lstrip().startswith("<"):
        return None, "an HTML page instead of JSON"
    try:
        return json.loads(text, parse_float=Decimal), None
    except ValueError:
        return None, "a body that is not valid JSON (cut short or garbled)"


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
