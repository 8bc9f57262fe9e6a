"""The first screen's lists: refunds that need attention, recent payments, the demo payments.

``read_home`` reads them (blocking: run it in a thread); ``HomeList`` shows them, one line
each, and says what enter on a line opens: a payment's lookup, or a refund's details.

Recent payments come from two places: the ledger's attempts (refunded) and the lookups of
this run, kept in memory only. A typed reference is customer data; keeping it on disk would be
a second store of it beside the ledger, with its own retention to answer for, while what must
survive a dropped SSH session (the refunds) is in the ledger already.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from refund_tui.core.models import ProviderName, RefundStatus
from refund_tui.core.text import printable
from refund_tui.tui.widgets.status import LOOKS, status_label

if TYPE_CHECKING:
    from refund_tui.core.ledger import Attempt, Ledger

#: Most refunds listed as needing attention (the board lists them all: b, then f).
ATTENTION_LIMIT = 12
#: Most recent payments listed.
RECENT_LIMIT = 6
#: Attempts read to find the recently refunded payments.
RECENT_ATTEMPTS = 50
#: What each provider's payment references look like: Novasend's payin ids start with tr_ or
#: pr_ (providers.md); Vesicash's are the merchant's own, upper-case words and hyphens in
#: every sample we have. Used only to suggest the other provider after a miss.
REFERENCE_SHAPES: Mapping[ProviderName, re.Pattern[str]] = {
    ProviderName.NOVASEND: re.compile(r"(tr|pr)_[A-Za-z0-9_]+"),
    ProviderName.VESICASH: re.compile(r"[A-Z0-9]+(-[A-Z0-9]+)+"),
}


@dataclass(frozen=True, slots=True)
class PaymentRef:
    provider: ProviderName
    reference: str

    def __str__(self) -> str:
        return f"{self.reference} ({self.provider.value.title()})"


@dataclass(frozen=True, slots=True)
class Recent:
    payment: PaymentRef
    #: "looked up", or "refunded: completed" and the like.
    what: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Demo:
    payment: PaymentRef
    amount: str
    shows: str


@dataclass(frozen=True, slots=True)
class HomeData:
    attention: list[Attempt]
    attention_total: int
    usual_settle: Mapping[ProviderName, timedelta]
    recent: list[Recent]
    demos: list[Demo]
    at: datetime


def age(delta: timedelta) -> str:
    """A short age: 45s, 12m, 3h, 2d."""
    seconds = max(int(delta.total_seconds()), 0)
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def demo_payments() -> list[Demo]:
    """The simulator's seeded payments, each with what it demonstrates."""
    from refund_tui.core.money import Money
    from refund_tui.sandbox.demo import SEED_PAYMENTS

    return [
        Demo(
            PaymentRef(seed.provider, seed.reference),
            Money.from_major(seed.amount, seed.currency).format(),
            seed.shows,
        )
        for seed in SEED_PAYMENTS
    ]


def read_home(
    ledger: Ledger,
    usual_settle: Mapping[ProviderName, timedelta],
    looked_up: Sequence[Recent],
    now: datetime,
    *,
    with_demos: bool,
) -> HomeData:
    """Everything the first screen lists (blocking: run it in a thread)."""
    stuck_before = {provider: now - usual for provider, usual in usual_settle.items()}
    attention, total = ledger.needing_attention(stuck_before, ATTENTION_LIMIT)
    refunded = [
        Recent(
            PaymentRef(attempt.provider, attempt.payment_reference),
            f"refunded: {attempt.status.value.replace('_', ' ')}",
            attempt.created_at,
        )
        for attempt in ledger.attempts(limit=RECENT_ATTEMPTS)
    ]
    return HomeData(
        attention=attention,
        attention_total=total,
        usual_settle=dict(usual_settle),
        recent=newest_payments([*looked_up, *refunded], RECENT_LIMIT),
        demos=demo_payments() if with_demos else [],
        at=now,
    )


def newest_payments(entries: Iterable[Recent], limit: int) -> list[Recent]:
    """The newest entry of each payment, newest first, at most ``limit``."""
    newest: dict[PaymentRef, Recent] = {}
    for entry in sorted(entries, key=lambda recent: recent.at, reverse=True):
        newest.setdefault(entry.payment, entry)
    return list(newest.values())[:limit]


def attention_reason(attempt: Attempt, usual: timedelta, now: datetime) -> str:
    """Why a refund needs a human, in a few words."""
    if attempt.double_refunds:
        return "paid twice: reconcile by hand"
    if attempt.status in (RefundStatus.PENDING, RefundStatus.PROCESSING):
        return f"stuck {age(now - attempt.created_at)}, usually < {age(usual)}"
    if attempt.status is RefundStatus.UNKNOWN:
        return "unknown: resolve in details"
    reason = attempt.failure_reason or ""
    if attempt.status is RefundStatus.REVERSED:
        return f"not paid: {reason}" if reason else "customer not paid"
    if attempt.flagged and attempt.status is RefundStatus.COMPLETED:
        return "notices disagree: reconcile by hand"
    return reason or attempt.status.value


def near_matches(reference: str, known: Iterable[PaymentRef], limit: int = 3) -> list[PaymentRef]:
    """Known payments whose reference is close to ``reference`` (case ignored)."""
    import difflib  # only after a miss: off the first paint's path

    by_key: dict[str, list[PaymentRef]] = {}
    for payment in known:
        by_key.setdefault(payment.reference.lower(), []).append(payment)
    keys = difflib.get_close_matches(reference.lower(), list(by_key), n=limit, cutoff=0.6)
    return [payment for key in keys for payment in by_key[key]][:limit]


def other_provider(reference: str, tried: ProviderName) -> ProviderName | None:
    """The other provider, when ``reference`` has its shape and not the tried one's."""
    if REFERENCE_SHAPES[tried].fullmatch(reference):
        return None
    for provider, shape in REFERENCE_SHAPES.items():
        if provider is not tried and shape.fullmatch(reference):
            return provider
    return None


# -- the list ----------------------------------------------------------------------------


def _cells(*cells: tuple[str, int], rest: str = "", style: str = "") -> Text:
    """Fixed-width cells, then ``rest`` in whatever room is left (the list cuts it); text from
    the ledger or a provider is made printable first."""
    line = Text("  ", no_wrap=True, overflow="ellipsis", style=style)
    for text, width in cells:
        line.append(printable(text)[:width].ljust(width) + " ")
    line.append(printable(rest))
    return line


def _header(title: str) -> Option:
    return Option(Text(title, style="bold"), disabled=True)


class HomeList(OptionList):
    """The first screen's lists; enter opens the line's payment or refund."""

    DEFAULT_CSS = """
    HomeList {
        height: 1fr; margin: 1 1 0 1; border: none; padding: 0;
        text-wrap: nowrap; text-overflow: ellipsis;
    }
    HomeList:focus { border: none; }
    """

    def __init__(self) -> None:
        super().__init__(id="home")
        #: option id -> a payment to look up, or the attempt id of a refund to open.
        self.targets: dict[str, PaymentRef | str] = {}

    def target(self) -> PaymentRef | str | None:
        """What the highlighted line opens."""
        option = self.highlighted_option
        return None if option is None or option.id is None else self.targets.get(option.id)

    def show(self, data: HomeData, suggestions: Sequence[tuple[PaymentRef, str]] = ()) -> None:
        """List ``data`` (and, first, ``suggestions`` after a lookup that found nothing)."""
        # After a miss the first suggestion is what enter opens; otherwise the same line.
        keep = suggestions[0][0] if suggestions else self.target()
        options: list[Option | None] = []
        self.targets = {}

        def add(target: PaymentRef | str, prompt: Text) -> None:
            option_id = f"line-{len(self.targets)}"
            self.targets[option_id] = target
            options.append(Option(prompt, id=option_id))

        if suggestions:
            options.append(_header("Did you mean"))
            for payment, why in suggestions:
                add(payment, _cells((payment.reference, 18), (payment.provider.value, 9), rest=why))
        shown = len(data.attention)
        more = f", newest {shown}: b then f for all" if data.attention_total > shown else ""
        options.append(_header(f"Needs attention ({data.attention_total}{more})"))
        if not data.attention:
            options.append(Option(Text("  nothing: no failed, unknown, reversed or stuck refund"), disabled=True))
        for attempt in data.attention:
            usual = data.usual_settle.get(attempt.provider, timedelta(0))
            look = LOOKS[attempt.status]
            add(
                attempt.attempt_id,
                _cells(
                    (status_label(attempt.status, flagged=attempt.flagged, double=bool(attempt.double_refunds)), 13),
                    (attempt.payment_reference, 17),
                    (attempt.amount.format(), 11),
                    (age(data.at - attempt.created_at), 3),
                    rest=attention_reason(attempt, usual, data.at),
                    style=look.style,
                ),
            )
        options.append(_header("Recent payments (looked up or refunded)"))
        if not data.recent:
            options.append(Option(Text("  none yet"), disabled=True))
        for recent in data.recent:
            ago = f"{recent.what}, {age(data.at - recent.at)} ago"
            add(recent.payment, _cells((recent.payment.reference, 18), (recent.payment.provider.value, 9), rest=ago))
        if data.demos:
            options.append(_header("Sandbox demo payments (what each shows)"))
            for demo in data.demos:
                add(
                    demo.payment,
                    _cells((demo.payment.reference, 17), (demo.amount, 11), rest=demo.shows),
                )
        with self.app.batch_update():
            self.clear_options()
            self.add_options(options)
            self._highlight(keep)
            if keep is None or suggestions:
                self.scroll_home(animate=False)

    def _highlight(self, wanted: PaymentRef | str | None) -> None:
        """Highlight ``wanted`` again after a refresh, else the first line that opens something."""
        ids = list(self.targets)
        chosen = next((i for i in ids if self.targets[i] == wanted), ids[0] if ids else None)
        if chosen is not None:
            self.highlighted = self.get_option_index(chosen)
