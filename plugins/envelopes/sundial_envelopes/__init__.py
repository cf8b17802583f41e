"""Envelope design contests: rounds that close themselves at their deadline."""
