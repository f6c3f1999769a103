"""New output files that appear whole or not at all, even when the writer is killed.

Decrypted plaintext must never be visible before it has all authenticated, and a
process killed half way (``kill -9``, the OOM killer, a power cut) must not leave the
verified prefix behind. So the file is written **unnamed**: ``open(dir, O_TMPFILE)``
creates an inode in the destination's directory with no name; it gets one
(``linkat`` through ``/proc/self/fd``) only after the last byte is written and synced.
A crash before that leaves nothing: the kernel frees an unnamed inode when its last
descriptor closes, and nothing else could open it in the meantime.

Where the filesystem (or the platform) has no ``O_TMPFILE`` or ``/proc`` is not mounted,
the **weaker fallback** writes a named, owner-only temporary file beside the target and
unlinks it on every failure Python sees (an exception, Ctrl-C, a disk that fills). A
``SIGKILL`` or power cut on that path leaves the temporary file (``.NAME.XXXXXXXX.partial``,
mode 0600) with the prefix written so far: remove it by hand.

Either way the target is never overwritten: an existing file is a
:class:`~bastion.errors.Conflict`, and it is left as it was.

>>> import tempfile, pathlib
>>> with tempfile.TemporaryDirectory() as name:
...     out = pathlib.Path(name) / "out"
...     written = write_new_file(out, lambda sink: sink.write(b"whole"))
...     written, out.read_bytes(), oct(out.stat().st_mode & 0o777)
(5, b'whole', '0o600')
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from bastion.errors import Conflict

MODE = 0o600  # owner-only: the file may hold decrypted data
# What open() says when a filesystem or kernel cannot make unnamed files: EOPNOTSUPP
# (the filesystem), EISDIR (a kernel older than 3.11 reads O_TMPFILE as O_DIRECTORY),
# EINVAL (flags it does not know).
_NO_TMPFILE = frozenset({errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL})
# What link() says on filesystems without hard links (FAT, some FUSE mounts).
_NO_LINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK})

Write = Callable[[BinaryIO], int]


def write_new_file(target: Path, write: Write) -> int:
    """Run ``write(sink)``; ``target`` appears (mode 0600) only when it returned and synced.

    Returns what ``write`` returned.

    Raises:
        Conflict: ``target`` exists; it is left untouched.
        Exception: whatever ``write`` raised; no file is left behind.
    """
    if target.exists() or target.is_symlink():
        raise Conflict(f"{target} exists; choose another output.")
    try:
        fd = open_unnamed(target.parent)
    except OSError as exc:
        if exc.errno not in _NO_TMPFILE:
            raise
        return _write_named(target, write)
    return _write_unnamed(fd, target, write)


def open_unnamed(directory: Path) -> int:
    """A descriptor of a new file with no name in ``directory`` (``O_TMPFILE``).

    Raises:
        OSError: with EOPNOTSUPP where unnamed files cannot be made there (or not on
            this platform, or without ``/proc`` to name them afterwards).
    """
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None or not os.path.isdir("/proc/self/fd"):
        raise OSError(errno.EOPNOTSUPP, "unnamed temporary files are not available")
    return os.open(directory, flag | os.O_WRONLY | os.O_CLOEXEC, MODE)


def _write_unnamed(fd: int, target: Path, write: Write) -> int:
    with os.fdopen(fd, "wb") as sink:
        count = write(sink)
        sink.flush()
        os.fsync(sink.fileno())
        folder = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            # A dir fd makes os.link call linkat() with AT_SYMLINK_FOLLOW, which links the
            # inode /proc/self/fd/N points at (plain link() would link the symlink itself).
            os.link(f"/proc/self/fd/{fd}", target.name, dst_dir_fd=folder, follow_symlinks=True)
        except FileExistsError:
            raise Conflict(f"{target} exists; choose another output.") from None
        finally:
            os.close(folder)
    _sync_directory(target.parent)
    return count


def _write_named(target: Path, write: Write) -> int:
    """The fallback: a named temporary file, removed on any failure Python sees."""
    partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.partial")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        with os.fdopen(os.open(partial, flags, MODE), "wb") as sink:
            count = write(sink)
            sink.flush()
            os.fsync(sink.fileno())
        _name(partial, target)
        return count
    finally:
        partial.unlink(missing_ok=True)


def _name(partial: Path, target: Path) -> None:
    """Give ``partial``'s content the name ``target``, never over an existing file."""
    try:
        os.link(partial, target)
    except FileExistsError:
        raise Conflict(f"{target} exists; choose another output.") from None
    except OSError as exc:
        if exc.errno not in _NO_LINKS:
            raise
        # No hard links here: rename, after a last check (a file created in between by
        # another process would be replaced; documented as part of the weaker path).
        if target.exists():
            raise Conflict(f"{target} exists; choose another output.") from None
        partial.replace(target)
    _sync_directory(target.parent)


def _sync_directory(directory: Path) -> None:
    """Make the new name durable; some filesystems cannot sync a directory, which is fine."""
    with contextlib.suppress(OSError):
        folder = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
