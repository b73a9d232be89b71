"""One process per run folder: an OS-level lock held for the whole of a ``fit`` run.

The lock is ``flock`` on a small file beside the run folder, ``<output_dir>/.<name>.lock`` (beside,
not inside: a run refused before its inputs load leaves no run folder behind, and
``run.overwrite=true`` deletes the folder, never the lock). The process that owns the folder
(global rank 0) takes it before any check or slow work and holds it until ``fit`` returns or
raises; ranks that a launcher started reuse rank 0's folder and never take it
(``unlearn.training.distributed``). A second run on a held folder, fresh or ``--resume``, is
refused at once with the pid, host and command of the holder, which the holder writes into the
lock file.

The operating system releases a ``flock`` when its process ends, however it ends: after a crash
or SIGKILL the file stays behind with the dead holder's details but nobody holds it, so the next
run takes it (and logs whose it was). The holder deletes the file when it releases the lock; a
process that locked a file just deleted this way checks that the file it holds is still the one
at the path, and tries again otherwise, so two processes never both believe they hold it.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shlex
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from unlearn.errors import RunFolderError

log = logging.getLogger(__name__)
# flock cannot work here (some network filesystems): the run goes on, unprotected, with a warning.
UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}
HOLDER_WAIT_S = 2.0  # how long to wait for a just-started holder to write its details


def lock_path(run_dir: str | Path) -> Path:
    """The lock file of ``run_dir``: ``<parent>/.<name>.lock``."""
    run_dir = Path(run_dir)
    return run_dir.with_name(f".{run_dir.name}.lock")


def _command() -> str:
    """This process's command line, as the user typed it (``python -m unlearn fit ...``)."""
    argv = list(sys.argv)
    if argv and Path(argv[0]).name == "__main__.py" and Path(argv[0]).parent.name == "unlearn":
        argv[:1] = ["-m", "unlearn"]
    return shlex.join([Path(sys.executable).name, *argv])


def _read(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 65536, 0).decode("utf-8") or "{}")
    except (OSError, ValueError):
        return {}


def describe_holder(holder: dict) -> str:
    """``pid 123 on host h (started ..., command: ...)``, or a note that the holder wrote nothing yet."""
    if not holder.get("pid"):
        return "a process that has not recorded itself yet"
    return (f"pid {holder['pid']} on host {holder.get('host', '?')} (started {holder.get('started', '?')}, "
            f"command: {holder.get('command', '?')})")


def _refusal(run_dir: Path, path: Path, fd: int) -> RunFolderError:
    deadline = time.monotonic() + HOLDER_WAIT_S
    holder = _read(fd)
    while not holder.get("pid") and time.monotonic() < deadline:  # the holder is writing its details
        time.sleep(0.05)
        holder = _read(fd)
    return RunFolderError(
        f"Run folder {run_dir} is in use by another run: {describe_holder(holder)} holds its lock {path}. Two runs "
        f"in one folder would mix their files. Wait for that run to end or stop it (its lock is released when it "
        f"ends, even if it is killed), or choose another run.name.")


def _open_locked(run_dir: Path, path: Path) -> int | None:
    """A descriptor of the lock file, locked by this process; None where the filesystem cannot lock.

    Raises:
        RunFolderError: another process holds the lock.
    """
    import fcntl

    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:  # the folder was just removed by a releasing holder
            path.parent.mkdir(parents=True, exist_ok=True)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            error = _refusal(run_dir, path, fd)
            os.close(fd)
            raise error from None
        except OSError as err:
            os.close(fd)
            if err.errno in UNSUPPORTED:
                return None
            raise
        try:  # a holder deletes the file as it releases it: the file locked must be the one at the path
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


class RunFolderLock:
    """The lock of one run folder, held by this process from :meth:`acquire` to :meth:`release`."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.path = lock_path(self.run_dir)
        self._fd: int | None = None
        self._made_parent = False

    def acquire(self) -> RunFolderLock:
        """Take the lock, or refuse at once.

        Raises:
            RunFolderError: another process holds it (naming that process), or the folder it goes in
                cannot be written.
        """
        parent = self.path.parent
        self._made_parent = not parent.exists()
        try:
            parent.mkdir(parents=True, exist_ok=True)
            fd = _open_locked(self.run_dir, self.path)
        except ImportError:  # no fcntl (Windows)
            fd = None
        except RunFolderError:
            self._remove_made_parent()
            raise
        except OSError as err:  # not writable, read-only filesystem, a file in the folder's place
            self._remove_made_parent()
            raise RunFolderError(f"Cannot create the run folder's lock {self.path} ({type(err).__name__}: {err}). "
                                 "Choose a run.output_dir this process can write to.") from err
        except BaseException:
            self._remove_made_parent()
            raise
        if fd is None:
            log.warning("Cannot lock the run folder %s on this system or filesystem: two runs started with the same "
                        "run.name would not be kept apart.", self.run_dir)
            return self
        previous = _read(fd)
        if previous.get("pid"):
            log.warning("The run folder %s was last held by %s, which ended without releasing it (killed or "
                        "crashed); this run takes it over.", self.run_dir, describe_holder(previous))
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": _command(),
                  "started": datetime.now().isoformat(timespec="seconds"), "run_dir": str(self.run_dir)}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode("utf-8"), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Delete the lock file and let go of the lock (the deletion first: see the module's notes)."""
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)
            self._fd = None
            self._remove_made_parent()

    def _remove_made_parent(self) -> None:
        if self._made_parent:  # a refused or finished run leaves no empty output folder it made
            try:
                self.path.parent.rmdir()
            except OSError:
                pass  # not empty: another run's folder or lock is in it


@contextmanager
def lock_run_folder(run_dir: str | Path, owner: bool = True) -> Iterator[RunFolderLock | None]:
    """Hold the lock of ``run_dir`` for the body; ``owner=False`` (a launched rank) takes nothing.

    Raises:
        RunFolderError: another process holds it.
    """
    if not owner:
        yield None
        return
    lock = RunFolderLock(run_dir).acquire()
    try:
        yield lock
    finally:
        lock.release()
