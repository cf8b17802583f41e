"""Feature switches: platform modules turned on or off at an exact minute."""

from .plugin import plan_switch

__all__ = ["plan_switch"]
