"""Provider clients: the only code that knows a provider's wire format."""

from __future__ import annotations

from refund_tui.core.models import ProviderName
from refund_tui.core.provider import Provider, ProviderSettings
from refund_tui.core.secret import Secret
from refund_tui.providers.novasend import NovasendClient
from refund_tui.providers.vesicash import VesicashClient

CLIENTS: dict[ProviderName, type[VesicashClient] | type[NovasendClient]] = {
    ProviderName.VESICASH: VesicashClient,
    ProviderName.NOVASEND: NovasendClient,
}


def make_provider(
    name: ProviderName, settings: ProviderSettings, credentials: dict[str, Secret]
) -> Provider:
    """A client for ``name``; raises ProviderError (UNAUTHORIZED) when a credential is missing."""
    return CLIENTS[name](settings, credentials)
