"""Running jobs: the orchestrator over a transport (processes here, Celery workers, Hugging Face Jobs)."""
