"""refund-tui: a terminal console for mobile-money refund operations."""

import logging
import os

__version__ = "0.1.0"

# A library's logs go nowhere unless the embedding program says so: never onto the console's
# screen or a script's stderr through logging's last-resort handler.
logging.getLogger(__name__).addHandler(logging.NullHandler())

# No third-party pydantic plugin observes what refund-tui validates (its configuration, the
# providers' answers): none is loaded, which also spares every start pydantic's scan of the
# installed packages for one (unless PYDANTIC_DISABLE_PLUGINS is set otherwise).
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
