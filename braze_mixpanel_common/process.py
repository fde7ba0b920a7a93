"""Stopping a child process together with everything it started (its process group).

``meltano`` starts the tap and the target as its own children: stopping only Meltano would leave
them running. Callers start it with ``start_new_session=True`` so the group is its own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from typing import Any


def stop_process_group(process: subprocess.Popen[Any], grace: float = 10.0) -> None:
    """SIGTERM ``process``'s group, then SIGKILL after ``grace`` seconds if it has not exited."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=wait)
            return
