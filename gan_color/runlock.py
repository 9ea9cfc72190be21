"""One run per run folder: an exclusive lock (`<run>/run.lock`) held for the whole run and released on any exit.

The kernel drops an flock() when its process dies, even by kill -9, so a lock left by a dead run on this host is
taken over; the file also records pid, host and command, which name the holder in the error and catch a live holder
on a filesystem without flock. A lock from another host cannot be checked and is reported with how to clear it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

LOCK_FILE = "run.lock"


class RunLocked(RuntimeError):
    """The run folder is in use by another run (the message names it and how to proceed)."""


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def describe(holder: dict[str, Any]) -> str:
    started = holder.get("started")
    since = time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(started)) if started else ""
    command = f" ({holder['command']})" if holder.get("command") else ""
    return f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}{since}{command}"


class RunLock:
    """Context manager: `with RunLock(run_dir): ...`; `enabled=False` (non-main processes) does nothing."""

    def __init__(self, run_dir: str | os.PathLike, *, enabled: bool = True) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self.enabled = enabled
        self.fd: int | None = None

    def __enter__(self) -> RunLock:
        if self.enabled:
            self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read(fd)
                os.close(fd)
                raise RunLocked(f"run folder {self.path.parent} is in use by {describe(holder)}. Wait for it to "
                                "finish or stop it, or give this run another name (name=...).") from None
            except OSError:  # a filesystem without flock (some network mounts): the pid/host record below decides
                break
            try:  # the holder may have removed the file between our open and our lock: lock the file now there
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        holder = _read(fd)
        here = socket.gethostname()
        if holder.get("pid") and holder.get("pid") != os.getpid():
            if holder.get("host") != here:
                os.close(fd)
                raise RunLocked(f"run folder {self.path.parent} is locked by {describe(holder)}, which cannot be "
                                f"checked from {here}. If that run has stopped, delete {self.path} and start again.")
            if pid_alive(int(holder["pid"])) and _is_training(int(holder["pid"])):
                os.close(fd)
                raise RunLocked(f"run folder {self.path.parent} is in use by {describe(holder)} (its lock file is "
                                f"not flock-able here). If that process is not a run, delete {self.path}.")
            print(f"note: took over the lock of a run that is no longer running ({describe(holder)})",
                  file=sys.stderr)
        record = {"pid": os.getpid(), "host": here, "started": time.time(), "command": " ".join(sys.argv)[:300]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        os.fsync(fd)
        self.fd = fd

    def release(self) -> None:
        if self.fd is None:
            return
        try:  # empty it before unlocking: a file left behind (unlink race) then names nobody
            os.ftruncate(self.fd, 0)
            self.path.unlink(missing_ok=True)
        finally:
            with contextlib.suppress(OSError):  # (no flock on this filesystem: nothing to unlock)
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def _read(fd: int) -> dict[str, Any]:
    try:
        size = os.fstat(fd).st_size
        data = json.loads(os.pread(fd, min(size, 65536), 0) or b"{}")
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _is_training(pid: int) -> bool:
    """Whether a live pid still looks like a gan-color run (not a recycled pid): its command line, where readable."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return True  # cannot tell: assume it is the run
    return not command.strip() or "python" in command or "gan" in command  # (empty while it execs: cannot tell)
