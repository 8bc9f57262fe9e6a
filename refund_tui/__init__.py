"""refund-tui: a terminal console for mobile-money refund operations."""

__version__ = "0.1.0"
