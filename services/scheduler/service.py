"""Former home of the scheduler's loop, now split (see the package docstring): `serve` is in `bootstrap`. Kept
only while tests/integration/test_message_sizes.py imports `serve` from here."""

from services.scheduler.bootstrap import serve

__all__ = ["serve"]
