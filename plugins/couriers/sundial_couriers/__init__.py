"""Couriers: overdue delivery tasks re-offered, and each courier's daily route."""
