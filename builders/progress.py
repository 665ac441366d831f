"""Progress as JSON lines on stdout, and nothing else on stdout.

The bot turns these lines into progress bars and status comments, so the worker's stdout must hold only
them. Libraries print to stdout too (GPTQModel's logger, tqdm in some paths), so at start the worker keeps
a private copy of the real stdout for progress and points file descriptor 1 at stderr.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any, TextIO


class Reporter:
    """Writes `{"stage", "fraction", "message"}` lines to the process's original stdout."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    @classmethod
    def take_stdout(cls) -> Reporter:
        """Keep the real stdout for progress; from now on anything printed goes to stderr."""
        sys.stdout.flush()
        private = os.dup(1)
        os.dup2(2, 1)
        sys.stdout = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")
        return cls(os.fdopen(private, "w", buffering=1, encoding="utf-8"))

    def emit(self, stage: str, fraction: float, message: str = "", **extra: Any) -> None:
        line = {"stage": stage, "fraction": round(min(max(fraction, 0.0), 1.0), 4), "message": message}
        with self._lock:
            self._stream.write(json.dumps(line | extra) + "\n")
            self._stream.flush()
