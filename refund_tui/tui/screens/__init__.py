"""The console's screens; each composes a ``Banner`` first and a ``Footer`` last."""
