"""Who runs a trial: a token naming this process, and whether such a process is still alive."""

from __future__ import annotations

import functools
import os
import re
import tempfile
from pathlib import Path

from torchnas._util.process import owner_alive, owner_token, process_token

__all__ = ["crash_path", "owner_alive", "owner_token", "process_token", "supervisor_token"]

#: The environment variable a supervising ``torchnas search`` sets to its own pid in its child.
SUPERVISOR_PID = "TORCHNAS_SUPERVISOR_PID"


@functools.lru_cache(maxsize=1)
def _supervisor(pid: int) -> str | None:
    text = os.environ.get(SUPERVISOR_PID, "")
    if not text.isdigit() or int(text) != os.getppid():
        return None
    return process_token(int(text))


def supervisor_token() -> str | None:
    """The token of the ``torchnas search`` process that supervises this one (``None``: none)."""
    return _supervisor(os.getpid())


def crash_path(owner: str) -> Path:
    """Where the process ``owner`` keeps the record of the trial it runs: the trial's number,
    its supervisor, and what :mod:`faulthandler` writes should a fatal signal end it (a folder
    of this user's in the temporary directory; see ``torchnas.study._orphans``)."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"torchnas-{uid}" / (re.sub(r"[^\w.-]", "_", owner)
                                                               + ".trial")
