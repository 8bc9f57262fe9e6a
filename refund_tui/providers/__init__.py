"""Provider clients: the only code that knows a provider's wire format.

The clients (httpx, wire models) are imported on first use, so importing
``refund_tui.providers.base`` (the config does) stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from refund_tui.core.models import ProviderName

if TYPE_CHECKING:
    from refund_tui.core.secret import Secret
    from refund_tui.providers.base import Provider, ProviderSettings
    from refund_tui.providers.novasend import NovasendClient
    from refund_tui.providers.vesicash import VesicashClient


def client_classes() -> dict[ProviderName, type[VesicashClient] | type[NovasendClient]]:
    """Every provider's client class."""
    from refund_tui.providers.novasend import NovasendClient
    from refund_tui.providers.vesicash import VesicashClient

    return {ProviderName.VESICASH: VesicashClient, ProviderName.NOVASEND: NovasendClient}


def make_provider(
    name: ProviderName, settings: ProviderSettings, credentials: dict[str, Secret]
) -> Provider:
    """A client for ``name``; raises ProviderError (UNAUTHORIZED) when a credential is missing."""
    return client_classes()[name](settings, credentials)
