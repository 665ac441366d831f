"""Execution: running queued jobs as builds (executor interface, local executor, worker launch, GPU slots)."""
