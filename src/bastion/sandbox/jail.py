"""The bubblewrap jail a model worker runs in.

Each worker starts as ``prlimit … bwrap … python -I -m bastion.sandbox.worker``, launched
with an explicit environment of ``PATH`` alone, in a new session without a terminal:

- **identity**: host uid and gid 65534 (``nobody``), never host root. A gateway running as
  root has bubblewrap join a user namespace of its own that maps 65534 to host 65534
  (:mod:`bastion.sandbox.identity`); an unprivileged gateway's bubblewrap maps the jail to
  the gateway's own uid. Every capability dropped, no further user namespaces.
- **namespaces**: new user, network (no interface but its own loopback), PID, IPC, UTS and
  cgroup. The worker is PID 1 and the only process of its PID namespace
  (``--as-pid-1``): no bubblewrap process inside to read or write through ``/proc/1``.
- **filesystem**: a read-only root holding read-only binds of the system (``/usr`` and its
  links) and of the Python installation running Bastion; ``/tmp`` a read-only empty
  folder; a read-only ``/dev`` (its device files still usable, no terminals: ``/dev/pts``
  is an empty tmpfs, so ``/dev/ptmx`` dangles); a fresh ``/proc`` with
  ``/proc/sys`` hidden under an empty read-only tmpfs. Nothing else of the host, no
  ``/etc``. The workspace folder is hidden under an empty read-only tmpfs even when it lies
  inside a bound folder. So there is no writable place at all: no file, folder, FIFO or
  socket can be created, and no inode of the host's kernel spent.
- **output**: standard output is discarded (or a pipe the caller reads); standard error is a
  pipe the gateway reads, bounds, escapes and labels (:mod:`bastion.sandbox.logs`).
- **limits** (``prlimit``, inherited and not raisable): address space, open files, core
  dumps off, largest file (0); CPU time per request (set by the worker) under a hard CPU
  budget for the worker's whole life (``lifetime_cpu_seconds``); no new processes,
  and no io_uring, mounts, ptrace or other calls a model never needs (the seccomp filter
  of :mod:`bastion.sandbox.seccomp`).
- **lifetime**: :meth:`Jail.kill` ends a jail's process group, bubblewrap and worker
  together, even once bubblewrap is reaped; a worker whose gateway is gone sees its socket
  close and exits. No ``--die-with-parent``: it is tied to the spawning thread, not the
  gateway, and never reached the worker.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import bastion
from bastion.errors import ConfigError, InvalidInput
from bastion.sandbox.frames import LOAD, READY, frame, receive
from bastion.sandbox.identity import JAIL_ID, jail_user_namespace, needs_host_root
from bastion.sandbox.logs import JailLogs
from bastion.sandbox.seccomp import worker_filter

# What bubblewrap and prlimit are started with: nothing of the gateway's environment (its
# passphrase, tokens...) reaches them, nor any process they start.
_LAUNCH_ENVIRONMENT = {"PATH": "/usr/bin:/bin"}
# A tmpfs that stays empty: small, and remounted read-only after it.
_EMPTY = ("--size", str(64 * 1024), "--tmpfs")
_TMP = "/tmp"  # noqa: S108 - a read-only folder of the jail's own root, not the host's
_SYSTEM_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")


@dataclass(frozen=True)
class SandboxLimits:
    """What one worker may use."""

    memory_mb: int = 2048
    cpu_seconds: int = 10  # per request
    # CPU time of a worker's whole life: the hard limit, which the worker cannot raise.
    # A worker that nears it retires after its answer and the pool starts a fresh one.
    lifetime_cpu_seconds: int = 3600
    open_files: int = 64
    timeout_seconds: float = 10.0  # wall clock per request, enforced by the gateway
    start_seconds: float = 60.0  # to start and load the model


class Jail:
    """Builds and starts sandboxed commands; one per gateway, shared by its pools."""

    def __init__(self, *, limits: SandboxLimits, hidden: Sequence[Path] = ()) -> None:
        bwrap, prlimit = shutil.which("bwrap"), shutil.which("prlimit")
        if bwrap is None or prlimit is None:
            raise ConfigError(
                "Models run in a bubblewrap sandbox: install the Debian packages bubblewrap "
                "and util-linux (`bash .ci/system-deps`), or set unsafe_in_process_runner = "
                "true for development only."
            )
        self.limits = limits
        self._bwrap, self._prlimit = bwrap, prlimit
        self._binds = _outermost([Path(sys.base_prefix), Path(sys.prefix), _package_root()])
        self._hidden = [path.resolve() for path in hidden]
        sources = [Path("/usr"), *self._binds]
        self._userns = jail_user_namespace(map_host_root=needs_host_root(sources))  # root only
        self._logs = JailLogs()
        self._logged: weakref.WeakKeyDictionary[subprocess.Popen[bytes], threading.Event]
        self._logged = weakref.WeakKeyDictionary()

    def command(
        self, argv: Sequence[str], *, seccomp_fd: int, userns_fd: int | None = None
    ) -> list[str]:
        """The full command line that runs ``argv`` jailed.

        The seccomp filter is read from ``seccomp_fd``; ``userns_fd`` is the user namespace
        to join (:mod:`bastion.sandbox.identity`), or None for bubblewrap to make one.
        """
        limits = self.limits
        prlimit = [
            self._prlimit,
            f"--as={limits.memory_mb * 1024 * 1024}",
            f"--nofile={limits.open_files}",
            "--core=0",
            "--fsize=0",  # no file to write: the jail has no writable place
            # A finite hard CPU limit: the worker lowers the soft one per request, and
            # cannot lift either past this (an unlimited hard limit let it undo its own).
            f"--cpu={limits.lifetime_cpu_seconds}:{limits.lifetime_cpu_seconds}",
            "--",
        ]
        return [
            *prlimit,
            self._bwrap,
            *_namespaces(userns_fd),
            *["--uid", str(JAIL_ID), "--gid", str(JAIL_ID), "--cap-drop", "ALL"],
            # The worker is PID 1 and the only process of its PID namespace: no bubblewrap
            # reaper (it would keep bubblewrap's memory, unfiltered by seccomp) to read or
            # write through /proc/1. Nothing needs reaping: the worker cannot fork. No
            # --new-session: the jail stays in the session and process group the gateway
            # made for it (no terminal), so kill() reaches the worker with bubblewrap.
            # No --die-with-parent: its PR_SET_PDEATHSIG fires when the *thread* that
            # spawned bubblewrap exits (jails start from short-lived worker threads), which
            # killed bubblewrap and left the worker, PID 1 of its namespace, running as a
            # child of host init. It never reached the worker anyway; the worker exits when
            # its socket closes, and kill() ends the whole process group.
            "--as-pid-1",
            *self._filesystem(),
            *["--clearenv", "--setenv", "PATH", "/usr/bin", "--setenv", "HOME", _TMP],
            *["--chdir", _TMP, "--seccomp", str(seccomp_fd), "--", *argv],
        ]

    def _filesystem(self) -> list[str]:
        # /tmp is a read-only folder of the read-only root, like every other place: the
        # jail has nowhere to write. A private tmpfs capped bytes but not inodes (bubblewrap
        # 0.8 has no nr_inodes), so empty files cost the host kernel memory without end;
        # no model runtime needs it (they load from memory). A folder, not a mount: it
        # covers nothing when Bastion itself lives under /tmp.
        filesystem = ["--dir", _TMP]
        filesystem += ["--ro-bind", "/usr", "/usr", *_system_links()]
        for path in self._binds:
            filesystem += ["--ro-bind", str(path), str(path)]
        for path in self._hidden:
            if any(path.is_relative_to(bound) for bound in self._binds):
                filesystem += [*_EMPTY, str(path), "--remount-ro", str(path)]
        # /proc/sys hidden under an empty read-only tmpfs: no kernel setting to read or write.
        filesystem += ["--proc", "/proc", *_EMPTY, "/proc/sys", "--remount-ro", "/proc/sys"]
        # /dev read-only: its device files (null, zero, urandom...) stay usable. Its devpts
        # is hidden under an empty read-only tmpfs, so /dev/ptmx dangles: every terminal a
        # jail could open would come from the host-wide pool (kernel.pty.max).
        filesystem += ["--dev", "/dev", *_EMPTY, "/dev/pts", "--remount-ro", "/dev/pts"]
        filesystem += ["--remount-ro", "/dev"]
        return [*filesystem, "--remount-ro", "/"]  # the root tmpfs, last: read-only

    def spawn(
        self,
        argv: Sequence[str],
        *,
        pass_fds: Sequence[int] = (),
        stdout: int = subprocess.DEVNULL,
        label: str = "check",
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` in the jail; its standard error is logged as ``label`` (``logs``)."""
        seccomp = os.memfd_create("bastion-seccomp")
        errors, stderr = os.pipe2(os.O_CLOEXEC)
        userns = () if self._userns is None else (self._userns,)
        try:
            os.write(seccomp, worker_filter())
            os.lseek(seccomp, 0, os.SEEK_SET)
            process = subprocess.Popen(  # noqa: S603 - fixed programs, arguments built here
                self.command(argv, seccomp_fd=seccomp, userns_fd=self._userns),
                pass_fds=(seccomp, *userns, *pass_fds),
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                env=_LAUNCH_ENVIRONMENT,
                start_new_session=True,
            )
        except BaseException:
            os.close(errors)
            raise
        finally:
            os.close(seccomp)
            os.close(stderr)
        self._logged[process] = self._logs.follow(errors, label=f"{label} (pid {process.pid})")
        return process

    def wait_logged(self, process: subprocess.Popen[bytes], timeout: float) -> None:
        """Wait (up to ``timeout``) until what the ended ``process`` wrote to stderr is logged."""
        logged = self._logged.get(process)
        if logged is not None:
            logged.wait(timeout)

    def spawn_worker(
        self, *, label: str = "worker"
    ) -> tuple[subprocess.Popen[bytes], socket.socket]:
        """A jailed ``bastion.sandbox.worker`` and the gateway's end of its socket pair."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            argv = self.python(
                "-m", "bastion.sandbox.worker", str(theirs.fileno()), str(self.limits.cpu_seconds)
            )
            process = self.spawn(argv, pass_fds=[theirs.fileno()], label=label)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        return process, ours

    def check_loads(self, model: bytes) -> bytes:
        """Load ``model`` in a throwaway jailed worker, never in the registering process.

        Returns what the worker reported with ``READY``: the model's signature as JSON when
        its format does not carry one (an estimator), else nothing.

        Raises:
            InvalidInput: the model's runtime cannot load it (or the worker died trying).
        """
        process, sock = self.spawn_worker(label="registration check")
        try:
            sock.settimeout(self.limits.start_seconds)
            sock.sendall(frame(LOAD, model))
            kind, report = receive(sock, limit=_MAX_REPORT)
        except (OSError, EOFError):
            kind, report = None, bytearray()
        finally:
            sock.close()
            self.kill(process)
            process.wait()
            self.wait_logged(process, timeout=_LOGGED_SECONDS)
        if kind != READY:
            raise InvalidInput("The model's runtime cannot load it (checked in the sandbox).")
        return bytes(report)

    def check(self) -> None:
        """Start Python in the jail once, so a broken sandbox stops the gateway at startup.

        Raises:
            ConfigError: bubblewrap cannot build the jail on this machine.
        """
        process = self.spawn(self.python("-c", ""))
        try:
            code = process.wait(timeout=self.limits.start_seconds)
        except subprocess.TimeoutExpired:
            self.kill(process)
            code = None
        self.wait_logged(process, timeout=_LOGGED_SECONDS)  # bubblewrap's error, if any
        if code != 0:
            raise ConfigError(
                "The model sandbox does not start here (bubblewrap needs user namespaces; its "
                "message is logged by bastion.sandbox). Fix the host, or set "
                "unsafe_in_process_runner = true for development only."
            )

    @staticmethod
    def kill(process: subprocess.Popen[bytes]) -> None:
        """SIGKILL a jail: bubblewrap and the worker, its process group (call before ``wait``).

        Killing bubblewrap alone is not enough: the worker is PID 1 of its own namespace and
        outlives it. So the group is killed even when bubblewrap has already been reaped:
        a worker whose bubblewrap died some other way still holds the group's id.
        """
        with contextlib.suppress(ProcessLookupError):  # no process of the group is left
            os.killpg(process.pid, signal.SIGKILL)
        if process.returncode is None:
            process.kill()  # also when it leads no group (a worker started by other means)

    def python(self, *arguments: str) -> list[str]:
        """A command line that runs the gateway's Python, isolated, inside the jail."""
        return [sys.executable, "-I", *arguments]


_MAX_REPORT = 64 * 1024
_LOGGED_SECONDS = 2.0  # for a check's stderr to reach the log before its verdict


def _package_root() -> Path:
    """The folder ``bastion`` is imported from (site-packages, or src/ when editable)."""
    return Path(bastion.__file__).resolve().parent.parent


def _outermost(paths: list[Path]) -> list[Path]:
    resolved = sorted({path.resolve() for path in paths})
    return [p for p in resolved if not any(p != o and p.is_relative_to(o) for o in resolved)]


def _namespaces(userns_fd: int | None) -> list[str]:
    """New namespaces of every kind; the user namespace made by bubblewrap, or ours."""
    if userns_fd is None:  # the gateway is not root: bubblewrap maps the jail to its uid
        return ["--unshare-all", "--unshare-user", "--disable-userns"]
    # --block-fd on the namespace's descriptor: bubblewrap reads it (a read that fails at
    # once) and closes it, so the descriptor does not reach the jail.
    fd = str(userns_fd)
    unshare = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"]
    return [*unshare, "--unshare-cgroup", "--userns", fd, "--block-fd", fd]


def _system_links() -> list[str]:
    """``/bin``, ``/lib``… as the host has them: links into /usr, or read-only folders."""
    arguments: list[str] = []
    for name in _SYSTEM_LINKS:
        path = Path(name)
        if path.is_symlink():
            arguments += ["--symlink", os.readlink(path), name]
        elif path.is_dir():
            arguments += ["--ro-bind", name, name]
    return arguments
