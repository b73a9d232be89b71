"""Files and folders that a crash cannot leave half-written.

Everything is written under a temporary name in the target's own folder and renamed when
complete: a rename within one filesystem is atomic, so a process killed at any instant leaves the
previous file (or folder) or the new one, never half of one. Each temporary name is unique to its
host, process and call (``.<name>.<host>.<pid>.<random>.partial``), so parallel runs writing the
same target never collide. Files are flushed to disk before the rename and :func:`fsync_dir`
makes the rename itself durable.

Replacing a folder takes two renames (the old one aside to ``<name>.old``, the new one into
place); :func:`recover_folder` undoes a crash between the two, so the previous good folder is
never lost. It runs before every folder write and may be called before reading a folder too.

No torch here: the configuration and cache modules import this.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from unlearn.errors import ConfigError

PARTIAL = ".partial"
OLD = ".old"


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename) to disk, where the platform allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not possible on every platform; the rename is still atomic
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _host() -> str:
    return socket.gethostname().replace(os.sep, "_") or "host"


def temp_sibling(target: str | Path) -> Path:
    """A fresh hidden name beside ``target``, unique to this host, process and call; nothing is created."""
    target = Path(target)
    return target.with_name(f".{target.name}.{_host()}.{os.getpid()}.{secrets.token_hex(4)}{PARTIAL}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def atomic_write(path: str | Path, data: bytes | str | Callable[[Path], None], *, encoding: str = "utf-8") -> None:
    """Write the file ``path`` (its parents are created) so that it is the old file or the new one, never half.

    Args:
        data: The contents (``str`` is encoded with ``encoding``), or a writer that writes the
            whole file to the temporary path it is given, e.g.
            ``lambda tmp: torch.save(obj, tmp)`` or ``lambda tmp: save_file(tensors, str(tmp))``.

    On any error (or interrupt) the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    try:
        if callable(data):
            data(tmp)
            _fsync_file(tmp)
        else:
            payload = data.encode(encoding) if isinstance(data, str) else bytes(data)
            with open(tmp, "xb") as f:  # created fresh, with the usual permissions (umask)
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """:func:`atomic_write` of text."""
    atomic_write(path, str(text), encoding=encoding)


def check_writable(folder: str | Path, key: str) -> None:
    """Check, by a real probe, that this process can create ``folder`` (if missing) and write files in it.

    Nothing is left behind: a temporary file is created and deleted in ``folder`` or, when it does
    not exist yet, in its nearest existing parent (the folder itself is not created). A probe,
    not the permission bits: root ignores those, and network filesystems may too.

    Raises:
        ConfigError: naming the folder, the reason and the config key ``key`` to change.
    """
    folder = Path(folder).expanduser()
    where = folder
    while not where.exists() and where != where.parent:
        where = where.parent
    if not where.is_dir():
        reason = f"{where} is a file, not a folder"
    else:
        probe = where / f".unlearn-write-probe.{_host()}.{os.getpid()}.{secrets.token_hex(4)}"
        try:
            probe.touch(exist_ok=False)
            probe.unlink()
            return
        except OSError as err:
            reason = f"{where} is not writable: {err.strerror or err}"
    raise ConfigError(f"{key}={folder} cannot be used: {reason}. Nothing was loaded or written. Set {key} to a "
                      "folder this process can write to.")


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists (another user's), or we cannot tell
        return False
    return False


def recover_folder(out: str | Path) -> None:
    """Finish or undo a folder replacement that a crash interrupted, and sweep dead temporaries.

    - ``<name>.old`` without ``<name>``: the crash came between the two renames, so the old
      folder is the last good one and goes back into place.
    - ``<name>.old`` beside ``<name>``: the new folder was in place; the old one is deleted.
    - temporaries of ``<name>`` made by processes of this host that no longer run are deleted
      (those of live processes, or of other hosts sharing the folder, are left alone).
    """
    out = Path(out)
    old = out.with_name(out.name + OLD)
    if old.exists():
        if out.exists():
            _remove(old)
        else:
            os.rename(old, out)
            fsync_dir(out.parent)
    if not out.parent.is_dir():
        return
    prefix = f".{out.name}.{_host()}."
    for stale in out.parent.glob(f".{out.name}.*{PARTIAL}"):
        pid = stale.name[len(prefix):-len(PARTIAL)].split(".")[0] if stale.name.startswith(prefix) else ""
        if pid.isdigit() and int(pid) != os.getpid() and _process_gone(int(pid)):
            _remove(stale)


def _fsync_tree(folder: Path) -> None:
    for root, _, names in os.walk(folder):
        for name in names:
            if not os.path.islink(os.path.join(root, name)):
                _fsync_file(Path(root, name))
        fsync_dir(Path(root))


def install_folder(src: str | Path, out: str | Path, replace: bool = False) -> None:
    """Rename the complete folder ``src`` to ``out`` (same filesystem).

    With ``replace`` an existing ``out`` is first renamed to ``<name>.old`` and deleted once the
    new folder is in place; :func:`recover_folder` repairs a crash between the two renames. Only
    one process may replace a given folder at a time.

    Raises:
        FileExistsError: ``out`` exists (or appeared meanwhile) and ``replace`` is false.
    """
    src, out = Path(src), Path(out)
    recover_folder(out)
    old = out.with_name(out.name + OLD)
    if out.exists():
        if not replace:
            raise FileExistsError(f"{out} already exists.")
        os.rename(out, old)
    try:
        os.rename(src, out)
    except OSError as err:
        if old.exists():
            recover_folder(out)
        if not replace and out.exists():
            raise FileExistsError(f"{out} already exists (written meanwhile by another process).") from err
        raise
    fsync_dir(out.parent)
    if old.exists():
        _remove(old)


@contextmanager
def atomic_folder(out: str | Path, replace: bool = False) -> Iterator[Path]:
    """Write the folder ``out`` under a temporary sibling name, then rename it into place.

    Yields a path that does not exist yet: the body creates it (``mkdir``, or any writer that
    creates its folder, such as ``save_pretrained``). On success its files are flushed to disk and
    it is installed with :func:`install_folder`; on any error it is deleted and ``out`` is left
    as it was. A leftover of an interrupted earlier write is repaired first (:func:`recover_folder`).

    Raises:
        FileExistsError: ``out`` exists and ``replace`` is false (checked before and after the body).
    """
    out = Path(out)
    recover_folder(out)
    if out.exists() and not replace:
        raise FileExistsError(f"{out} already exists.")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = temp_sibling(out)
    try:
        yield staging
        if not staging.is_dir():
            raise FileNotFoundError(f"Nothing was written for {out}: the folder {staging} was never created.")
        _fsync_tree(staging)
        install_folder(staging, out, replace)
    finally:
        if staging.exists():
            _remove(staging)
