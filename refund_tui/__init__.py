"""refund-tui: a terminal console for mobile-money refund operations."""

import logging

__version__ = "0.1.0"

# A library's logs go nowhere unless the embedding program says so: never onto the console's
# screen or a script's stderr through logging's last-resort handler.
logging.getLogger(__name__).addHandler(logging.NullHandler())
