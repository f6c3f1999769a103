"""Who a jail is on the host: never root, even when the gateway runs as root.

bubblewrap run by an ordinary user maps the jail's uid to that user, which is what we want.
Run by root it maps the jail to host root (``uid_map 65534 0 1``): files only root may
write (``/proc/sys``, ``/proc/sysrq-trigger``) would then be writable from the jail. So a
gateway running as root builds one user namespace of its own, whose uid and gid 65534 are
host uid and gid 65534 (``nobody``/``nogroup``), and has bubblewrap join it (``--userns``)
and switch to 65534 there: every jailed process is host ``nobody``.

bubblewrap does its setup (finding the folders to bind, mounting them) as 65534 with
capabilities inside that namespace only. Those let it look up a folder that only root may
search (a Python installed under ``/root``) only if the folder's owner is mapped in the
namespace. So when a folder to bind is such a folder (:func:`needs_host_root`), host root
is mapped too, as uid and gid 1 — never as 0, so it holds no capability there — and
otherwise not at all. No jailed process can become uid 1: bubblewrap drops every
capability and sets no-new-privileges before the worker starts, every mount is
``nosuid``, and no new user namespace can be made below this one (its
``max_user_namespaces`` is 0, besides the seccomp filter), so the mapping serves
bubblewrap's setup and nothing else.
"""

from __future__ import annotations

import functools
import os
import stat
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from bastion.errors import ConfigError

JAIL_ID = 65534  # nobody / nogroup, in the jail and on the host
_MAP = f"{JAIL_ID} {JAIL_ID} 1\n"
_HOST_ROOT = "1 0 1\n"  # host root as uid (gid) 1, for bubblewrap's lookups only

# Runs in a fresh process: makes the namespace, waits for its maps, forbids namespaces below.
_HOLDER = """
import ctypes, os
if ctypes.CDLL(None, use_errno=True).unshare(0x10000000) != 0:  # CLONE_NEWUSER
    raise SystemExit(1)
os.write(1, b"u")
if os.read(0, 1) != b"m":
    raise SystemExit(1)
with open("/proc/sys/user/max_user_namespaces", "w") as limit:
    limit.write("0")
os.write(1, b"d")
os.read(0, 1)
"""


def needs_host_root(paths: Sequence[Path]) -> bool:
    """Whether uid 65534 may not search its way to one of ``paths`` (by mode bits)."""
    for path in paths:
        for folder in [*reversed(path.parents), path]:
            mode = folder.stat()
            if mode.st_uid == JAIL_ID:
                allowed = mode.st_mode & stat.S_IXUSR
            elif mode.st_gid == JAIL_ID:
                allowed = mode.st_mode & stat.S_IXGRP
            else:
                allowed = mode.st_mode & stat.S_IXOTH
            if not allowed:
                return True
    return False


@functools.cache
def jail_user_namespace(*, map_host_root: bool) -> int | None:
    """When the gateway runs as root, a descriptor of the jail's user namespace; else None.

    ``map_host_root``: map host root as uid and gid 1 (see the module's docstring). Made
    once per process and kind, and shared by its jails (they are all ``nobody`` alike).

    Raises:
        ConfigError: the namespace cannot be made (the sandbox refuses to start).
    """
    if os.geteuid() != 0:
        return None
    holder = subprocess.Popen(  # noqa: S603 - the gateway's own Python, a fixed program
        [sys.executable, "-I", "-c", _HOLDER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={},
    )
    stdin, stdout = holder.stdin, holder.stdout
    if stdin is None or stdout is None:  # pragma: no cover - both are pipes
        raise ConfigError("The model sandbox cannot make its user namespace.")
    namespace = -1
    try:
        if stdout.read(1) == b"u":
            for name in ("uid_map", "gid_map"):
                Path(f"/proc/{holder.pid}/{name}").write_text(
                    _MAP + (_HOST_ROOT if map_host_root else "")
                )
            namespace = os.open(f"/proc/{holder.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
            stdin.write(b"m")
            stdin.flush()
            if stdout.read(1) != b"d":
                os.close(namespace)
                namespace = -1
    except OSError:
        if namespace >= 0:
            os.close(namespace)
        namespace = -1
    finally:
        stdin.close()
        stdout.close()
        holder.wait()
    if namespace < 0:
        raise ConfigError(
            "The model sandbox cannot make the user namespace that keeps its workers off "
            "host root (the kernel must allow user namespaces)."
        )
    return namespace
