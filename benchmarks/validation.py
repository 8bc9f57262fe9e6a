"""Per-keystroke cost of the refund form's validation: amounts and mobile numbers.

Simulates an operator typing realistic inputs (valid and invalid) one character at a time,
validating the whole field after every keystroke as the form does, and prints p50/p99/max
per call in microseconds against the 1 ms p99 target. One-off costs (imports, carrier data,
a region's first number) are measured first, in this fresh interpreter, and shown apart.

Run: python benchmarks/validation.py [--rounds N]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET_P99_US = 1000.0

#: (currency, refundable balance in minor units, what the operator types)
AMOUNTS = [
    ("XOF", 1850, "1,850"),
    ("XOF", 1850, "1500"),
    ("XOF", 1850, "150.5"),
    ("XOF", 1850, "2,000"),
    ("XOF", 500_000, "250 000 XOF"),
    ("GHS", 125_050, "1,250.50"),
    ("GHS", 125_050, "12.345"),
    ("GHS", 125_050, "99999999999"),
    ("ZMW", 9_999, "abc"),
]

#: (region, what the operator types)
PHONES = {
    "GH": [
        "024 123 4567",
        "+233 24 123 4567",
        "233241234567",
        "030 234 5678",
        "024 123 45678",
        "+234 803 123 4567",
        "call me",
    ],
    "ZM": ["096 8832801", "+260 97 883 2801", "0968 832 8011", "0211 234 567"],
    "CI": ["07 55 55 01 01", "+225 05 55 55 01 02", "07 02 03 04", "2250155550103"],
}


def keystrokes(text: str) -> list[str]:
    """The field's content after each keystroke while typing ``text``."""
    return [text[:end] for end in range(1, len(text) + 1)]


def timed_us(call: Callable[[], object], error: type[Exception]) -> float:
    """Microseconds one validation takes; its (expected) refusal is part of the cost."""
    start = time.perf_counter_ns()
    try:
        call()
    except error:
        pass
    return (time.perf_counter_ns() - start) / 1000


def typing(calls: list[Callable[[], object]], error: type[Exception], rounds: int) -> list[float]:
    """Per-call times over ``rounds`` passes of every keystroke in ``calls``."""
    return [timed_us(call, error) for _ in range(rounds) for call in calls]


def percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def report(label: str, samples: list[float]) -> None:
    ordered = sorted(samples)
    p99 = percentile(ordered, 0.99)
    slow = sum(sample > TARGET_P99_US for sample in ordered)
    verdict = f"< {TARGET_P99_US:.0f}: " + ("ok" if p99 < TARGET_P99_US else "MISSED")
    print(
        f"{label:<20}{len(ordered):>8}{percentile(ordered, 0.50):>8.1f}{p99:>8.1f}"
        f"{ordered[-1]:>9.1f}{slow:>7}  {verdict}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1000, help="times each input is typed")
    rounds = parser.parse_args().rounds

    start = time.perf_counter()
    from refund_tui.core.money import Money, MoneyError, parse_amount
    from refund_tui.core.phone import PhoneError, validate_mobile, warm_up

    print("one-off costs (fresh interpreter), milliseconds")
    import_ms = (time.perf_counter() - start) * 1000
    print(f"  {'import money + phone (phonenumbers)':<56}{import_ms:7.1f}")
    warm_up_ms = timed_us(warm_up, PhoneError) / 1000
    print(f"  {'carrier data (phone.warm_up, else first valid number)':<56}{warm_up_ms:7.1f}")
    for region, texts in PHONES.items():
        first = timed_us(lambda: validate_mobile(texts[0], region), PhoneError) / 1000
        print(f"  {f'first {region} number (region metadata)':<56}{first:7.1f}")

    amount_typing = [
        (lambda text=text, currency=currency, cap=cap: parse_amount(text, currency, cap))
        for currency, balance, typed in AMOUNTS
        for cap in [Money(balance, currency)]
        for text in keystrokes(typed)
    ]
    phone_typing = {
        region: [
            (lambda text=text, region=region: validate_mobile(text, region))
            for typed in texts
            for text in keystrokes(typed)
        ]
        for region, texts in PHONES.items()
    }

    typing(amount_typing, MoneyError, 1)
    for calls in phone_typing.values():
        typing(calls, PhoneError, 1)  # untimed: loads the metadata of every region typed

    print(f"\nper keystroke, microseconds ({rounds} rounds of typing every input)")
    print(f"{'':<20}{'calls':>8}{'p50':>8}{'p99':>8}{'max':>9}{'>1 ms':>7}  p99 target")
    report("amount (with cap)", typing(amount_typing, MoneyError, rounds))
    for region, calls in phone_typing.items():
        report(f"phone {region}", typing(calls, PhoneError, rounds))


if __name__ == "__main__":
    main()
