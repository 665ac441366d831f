"""Traces of the build machine in published text: absolute paths, the home folder, the host name.

Published files hold nothing of the machine that built them. The publisher checks every text it writes
(card, PR description) before the first Hub call; tests scan every file of a published release alike.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

# An absolute POSIX path of two or more segments, not part of a URL (`https://host/a/b`) or of a relative path
# (`trt-llm/engines/…`), and a Windows drive path.
_ABSOLUTE = re.compile(r"(?<![\w:/.~\-\]\)])/(?:[\w.@+-]+/)+[\w.@+-]*|\b[A-Za-z]:\\[\w\\. -]+")


def machine_names() -> list[str]:
    """This machine's host name and home folder (a name such as `localhost` is not a trace)."""
    names = [str(Path.home())]
    host = socket.gethostname().split(".")[0]
    if len(host) >= 3 and host.lower() not in {"localhost", "ubuntu", "debian"}:
        names.append(host)
    return names


def machine_traces(text: str, names: list[str] | None = None) -> list[str]:
    """The absolute paths and machine names found in `text` (empty when it is portable)."""
    found = [m.group(0) for m in _ABSOLUTE.finditer(text)]
    for name in names if names is not None else machine_names():
        if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text):
            found.append(name)
    return list(dict.fromkeys(found))
