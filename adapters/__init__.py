"""Adapters: one per orchestrator, each behind its own extra (``signoff[prefect]``, ...)."""
