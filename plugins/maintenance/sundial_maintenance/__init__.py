"""Maintenance of the platform and of Sundial itself: archives, reports, health, backups, alerts."""
