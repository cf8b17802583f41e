"""Writing-inspiration cards pushed to subscribers every day."""
