"""The demo world: obviously fake credentials and secrets, Vesicash countries, seeded payments.

Seeded times are relative to the simulator clock at seeding (``POST /_sandbox/reset``), so
the documented ages hold right after a reset. docs/SANDBOX.md lists every payment below.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from refund_tui.core.models import PaymentStatus, ProviderName
from refund_tui.core.money import Money
from refund_tui.sandbox.settlement import stages
from refund_tui.sandbox.world import SandboxPayment, SandboxRefund, World

VESICASH_PUBLIC_KEY = "vsc_pub_DEMO_not_a_real_key"
VESICASH_SECRET_KEY = "vsc_sec_DEMO_not_a_real_key"
NOVASEND_API_KEY = "nvs_DEMO_api_key"
NOVASEND_API_CLIENT = "nvs_DEMO_client"
VESICASH_WEBHOOK_SECRET = "vsc_whsec_DEMO_not_a_real_secret"
NOVASEND_WEBHOOK_SECRET = "nvs_whsec_DEMO_not_a_real_secret"


@dataclass(frozen=True, slots=True)
class VesicashCountry:
    id: int
    name: str
    country_code: str
    currency_code: str


VESICASH_COUNTRIES = (
    VesicashCountry(83, "Ghana", "GH", "GHS"),
    VesicashCountry(246, "Zambia", "ZM", "ZMW"),
    VesicashCountry(161, "Nigeria", "NG", "NGN"),
    VesicashCountry(113, "Kenya", "KE", "KES"),
    VesicashCountry(248, "South Africa", "ZA", "ZAR"),
)

#: Currencies a payment may be in, per provider.
CURRENCIES: dict[ProviderName, frozenset[str]] = {
    ProviderName.VESICASH: frozenset(c.currency_code for c in VESICASH_COUNTRIES),
    ProviderName.NOVASEND: frozenset({"XOF", "XAF"}),
}


@dataclass(frozen=True, slots=True)
class SeedRefund:
    reference: str
    amount: str
    reason: str
    age: timedelta
    external_reference: str | None = None


@dataclass(frozen=True, slots=True)
class SeedPayment:
    provider: ProviderName
    reference: str
    amount: str
    currency: str
    customer_name: str
    phone: str
    age: timedelta
    status: PaymentStatus = PaymentStatus.SUCCESSFUL
    merchant_balance: str | None = None
    refunds: tuple[SeedRefund, ...] = ()
    #: What the payment demonstrates, in a few words (the console's first screen lists it).
    shows: str = ""


_V = ProviderName.VESICASH
_N = ProviderName.NOVASEND
_FAILED = PaymentStatus.FAILED
_H = timedelta(hours=1)
_D = timedelta(days=1)

# fmt: off
SEED_PAYMENTS = (
    # Vesicash, Ghana (GHS)
    SeedPayment(_V, "VSC-GH-FRESH", "250.00", "GHS", "Ama Mensah", "+233245550101", 2 * _H,
                shows="fresh: a plain full or partial refund"),
    SeedPayment(_V, "VSC-GH-PARTIAL", "180.00", "GHS", "Kwame Boateng", "+233245550102", 2 * _D,
                refunds=(SeedRefund("VRF-5eed00000001", "30.00", "Item out of stock", _D),),
                shows="partly refunded: 150.00 left"),
    SeedPayment(_V, "VSC-GH-REFUNDED", "75.50", "GHS", "Akosua Owusu", "+233245550103", 4 * _D,
                refunds=(SeedRefund("VRF-5eed00000002", "75.50", "Duplicate charge", 3 * _D),),
                shows="fully refunded: nothing left"),
    SeedPayment(_V, "VSC-GH-FAILED", "120.00", "GHS", "Yaw Asante", "+233245550104", _D,
                status=_FAILED,
                shows="payment failed: not refundable"),
    SeedPayment(_V, "VSC-GH-LOWBAL", "300.00", "GHS", "Efua Addo", "+233245550105", 5 * _H,
                merchant_balance="20.00",
                shows="low merchant balance: refund fails"),
    SeedPayment(_V, "VSC-GH-NOWALLET", "40.00", "GHS", "Kofi Appiah", "+233245559901", 2 * _D,
                refunds=(SeedRefund("VRF-5eed00000003", "40.00", "Customer cancellation", _D),),
                shows="fails: no wallet (a failed refund on record)"),
    SeedPayment(_V, "VSC-GH-TIMEOUT", "60.00", "GHS", "Abena Darko", "+233245559903", _H,
                shows="fails: operator timeout"),
    SeedPayment(_V, "VSC-GH-REVERSED", "90.00", "GHS", "Kojo Antwi", "+233245559905", _H,
                shows="completes, then is reversed"),
    # Vesicash, Zambia (ZMW)
    SeedPayment(_V, "VSC-ZM-FRESH", "500.00", "ZMW", "Mwila Banda", "+260965550101", 3 * _H,
                shows="fresh: a plain Zambian refund"),
    SeedPayment(_V, "VSC-ZM-PARTIAL", "420.00", "ZMW", "Chanda Mulenga", "+260965550102", 3 * _D,
                refunds=(SeedRefund("VRF-5eed00000004", "100.00", "Partial order cancelled", 2 * _D),),
                shows="partly refunded: 320.00 left"),
    SeedPayment(_V, "VSC-ZM-REFUNDED", "95.00", "ZMW", "Bwalya Phiri", "+260965550103", 5 * _D,
                refunds=(SeedRefund("VRF-5eed00000005", "45.00", "Damaged item", 4 * _D),
                         SeedRefund("VRF-5eed00000006", "50.00", "Order cancelled", 3 * _D)),
                shows="fully refunded in two parts"),
    SeedPayment(_V, "VSC-ZM-FAILED", "210.00", "ZMW", "Natasha Zulu", "+260965550104", _D,
                status=_FAILED,
                shows="payment failed: not refundable"),
    SeedPayment(_V, "VSC-ZM-LOWBAL", "650.00", "ZMW", "Mutale Tembo", "+260965550105", 6 * _H,
                merchant_balance="50.00",
                shows="low merchant balance: refund fails"),
    SeedPayment(_V, "VSC-ZM-LIMIT", "80.00", "ZMW", "Mulenga Sakala", "+260965559902", _H,
                shows="fails: wallet limit exceeded"),
    SeedPayment(_V, "VSC-ZM-STUCK", "70.00", "ZMW", "Thandiwe Lungu", "+260965559904", _H,
                shows="stuck: stays processing"),
    # Novasend, Côte d'Ivoire (XOF)
    SeedPayment(_N, "tr_demo_fresh", "15000", "XOF", "Aya Kouassi", "+2250755550101", 2 * _H,
                shows="fresh: a plain refund"),
    SeedPayment(_N, "tr_demo_partial", "25000", "XOF", "Koffi Yao", "+2250755550102", 2 * _D,
                refunds=(SeedRefund("rf_demo_partial_1", "5000", "Client cancellation", _D,
                                    "demo-partial-1"),),
                shows="partly refunded: 20,000 left"),
    SeedPayment(_N, "tr_demo_refunded", "8500", "XOF", "Awa Traore", "+2250555550103", 3 * _D,
                refunds=(SeedRefund("rf_demo_refunded_1", "8500", "Duplicate charge", 2 * _D,
                                    "demo-refunded-1"),),
                shows="fully refunded: nothing left"),
    SeedPayment(_N, "tr_demo_failed", "12000", "XOF", "Mariam Kone", "+2250155550104", _D,
                status=_FAILED,
                shows="payment failed: not refundable"),
    SeedPayment(_N, "tr_demo_old", "20000", "XOF", "Ibrahim Ouattara", "+2250755550105", 10 * _D,
                shows="window closed: 10 days old"),
    SeedPayment(_N, "tr_demo_lowbal", "50000", "XOF", "Adjoua Nguessan", "+2250555550106", 4 * _H,
                merchant_balance="10000",
                shows="low merchant balance: refund fails"),
    SeedPayment(_N, "tr_demo_nowallet", "10000", "XOF", "Seydou Bamba", "+2250755559901", 2 * _D,
                refunds=(SeedRefund("rf_demo_nowallet_1", "10000", "Client cancellation", _D,
                                    "demo-nowallet-1"),),
                shows="fails: no wallet; a retry fails too"),
    SeedPayment(_N, "tr_demo_limit", "10000", "XOF", "Fatou Diallo", "+2250755559902", _H,
                shows="fails: wallet limit exceeded"),
    SeedPayment(_N, "tr_demo_timeout", "7500", "XOF", "Moussa Coulibaly", "+2250555559903", _H,
                shows="fails: operator timeout"),
    SeedPayment(_N, "tr_demo_stuck", "5000", "XOF", "Aminata Toure", "+2250155559904", _H,
                shows="stuck: stays processing"),
    SeedPayment(_N, "tr_demo_reversed", "6000", "XOF", "Yao Kouame", "+2250755559905", _H,
                shows="completes, then is reversed"),
)
# fmt: on


def seed_world() -> World:
    """A fresh world (clock not advanced) holding the seeded payments, aged from its now."""
    world = World()
    now = world.now()
    for spec in SEED_PAYMENTS:
        world.add_payment(_payment(spec, world.take_number(), now))
    return world


def _payment(spec: SeedPayment, number: int, now: datetime) -> SandboxPayment:
    def minor(major: str) -> int:
        return Money.from_major(major, spec.currency).minor

    refunds = [
        SandboxRefund(
            reference=r.reference,
            amount=minor(r.amount),
            reason=r.reason,
            created_at=now - r.age,
            phone=spec.phone,
            external_reference=r.external_reference,
            transaction_reference=("tr_" + r.reference) if spec.provider is _N else None,
            # Seeded refunds never notify: as if every status they will reach were already sent.
            notified=stages(spec.phone)[-1].status,
        )
        for r in spec.refunds
    ]
    return SandboxPayment(
        provider=spec.provider,
        reference=spec.reference,
        number=number,
        amount=minor(spec.amount),
        currency=spec.currency,
        status=spec.status,
        customer_name=spec.customer_name,
        phone=spec.phone,
        created_at=now - spec.age,
        merchant_balance=None if spec.merchant_balance is None else minor(spec.merchant_balance),
        refunds=refunds,
    )
