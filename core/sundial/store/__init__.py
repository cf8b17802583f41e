"""The job store: jobs, runs (outbox and history in one) and run logs in SQL."""
