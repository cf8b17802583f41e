"""Brokers: one module per technology behind ``sundial.abc.Broker``."""
