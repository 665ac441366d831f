"""What a GPU host runs: the Celery app and tasks, the one-task entry of a Job, GPU seats, spares."""
