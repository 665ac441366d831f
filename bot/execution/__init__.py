"""Running jobs: the local executor, or the orchestrator over a transport (Celery, Jobs); housekeeping."""
