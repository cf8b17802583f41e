"""Locks beside the job store: Redis for the fast path (``locks.redis``).

The embedded default needs none: the job store's own locking (row locks and
advisory locks on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite) decides every
claim, and every guarantee holds on it alone.
"""
