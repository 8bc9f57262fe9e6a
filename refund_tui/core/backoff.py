"""Reads retried with backoff: a 429, a 5xx, a timeout or a dropped connection on a read
(never on a refund request) is tried again, honouring the provider's Retry-After."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from refund_tui.core.models import ErrorCode, ProviderError

T = TypeVar("T")

#: Errors after which the same read may succeed.
TRANSIENT = frozenset(
    {ErrorCode.RATE_LIMITED, ErrorCode.SERVER_ERROR, ErrorCode.TIMEOUT, ErrorCode.CONNECTION}
)
TRIES = 5
FIRST_DELAY = 0.2
MAX_DELAY = 10.0


async def read_with_backoff(
    read: Callable[[], Awaitable[T]], *, tries: int = TRIES, first_delay: float = FIRST_DELAY
) -> T:
    """``await read()``, tried up to ``tries`` times while it fails transiently; waits double
    each time (with jitter), at least the error's Retry-After, at most MAX_DELAY."""
    failures = 0
    while True:
        try:
            return await read()
        except ProviderError as error:
            failures += 1
            if error.code not in TRANSIENT or failures >= tries:
                raise
            delay = first_delay * 2 ** (failures - 1) * random.uniform(0.75, 1.25)
            await asyncio.sleep(min(max(delay, error.retry_after or 0.0), MAX_DELAY))
