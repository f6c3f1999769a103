"""A compromised worker in the real jail reaches no secret, no host root, no writable place."""

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from bastion.sandbox import Jail, SandboxLimits
from bastion.sandbox.identity import needs_host_root

# Runs inside the jail with the worker's socket as argv[1]; prints one JSON report.
SNOOP = r"""
import glob, json, os, re, sys
sock = int(sys.argv[1])
def read(path, size=1 << 20):
    try:  # non-blocking: a pipe's descriptor must not hang the search
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            return os.read(fd, size)
        finally:
            os.close(fd)
    except OSError as exc:
        return type(exc).__name__.encode()
seen = bytearray()
pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
for pid in pids:
    for name in ("environ", "cmdline", "mem", "maps", "status"):
        seen += read(f"/proc/{pid}/{name}")
    for fd in glob.glob(f"/proc/{pid}/fd/*"):
        seen += read(fd, 65536) if not fd.endswith(f"/{sock}") else b""
# Everything this process can read of its own memory.
with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", 0) as mem:
    for line in maps:
        span, perms = line.split()[:2]
        if perms[0] != "r" or "[vsyscall]" in line:
            continue
        start, end = (int(x, 16) for x in span.split("-"))
        try:
            mem.seek(start)
            seen += mem.read(min(end - start, 64 << 20))
        except OSError:
            pass
fds = sorted(int(fd) for fd in os.listdir("/proc/self/fd") if os.path.exists(f"/proc/self/fd/{fd}"))
print(json.dumps({
    "pids": pids,
    "self": os.getpid(),
    "ppid": os.getppid(),
    "parent": read(f"/proc/{os.getppid()}/environ").decode(errors="replace"),
    "fds": fds,
    "seen": seen.hex(),
}))
"""

# Runs inside the jail; tries to act as host root and to write outside /tmp.
PRIVILEGE = r"""
import json, os, sys
def attempt(action):
    try:
        action()
        return "ok"
    except OSError as exc:
        return type(exc).__name__
def write(path, data="1"):
    return attempt(lambda: open(path, "w").write(data))
def rewrite(path):  # writes back what it reads: proves write access, changes nothing
    def action():
        with open(path, "r+") as setting:
            value = setting.read()
            setting.seek(0)
            setting.write(value)
    return attempt(action)
uid = os.getuid()
host = None  # the uid outside: the host's when the user namespace is a child of the host's
for line in open("/proc/self/uid_map"):
    inside, outside, count = map(int, line.split())
    if inside <= uid < inside + count:
        host = outside + uid - inside
hidden = sys.argv[1]
mounts = [line.split(" - ")[1].split() + [line.split()[4], line.split()[5]]
          for line in open("/proc/self/mountinfo")]
print(json.dumps({
    "uid": uid,
    "host_uid": host,
    "uid_map": sorted(" ".join(line.split()) for line in open("/proc/self/uid_map")),
    "core_pattern": rewrite("/proc/sys/kernel/core_pattern"),
    "hostname": rewrite("/proc/sys/kernel/hostname"),
    "aslr": rewrite("/proc/sys/kernel/randomize_va_space"),
    "sysrq": write("/proc/sysrq-trigger", "h"),  # "h": print the help, if it ever passed
    "mkdir_proc_sys": attempt(lambda: os.mkdir("/proc/sys/x")),
    "root": write("/planted"),
    "root_dir": attempt(lambda: os.mkdir("/planted")),
    "dev": write("/dev/planted"),
    "dev_shm": write("/dev/shm/planted"),
    "usr": write("/usr/planted"),
    "hidden": write(os.path.join(hidden, "planted")),
    "tmp": write("/tmp/fine"),
    "tmp_flood": attempt(lambda: open("/tmp/flood", "wb").write(b"x" * (32 << 20))),
    "uncapped": [m[3] for m in mounts if m[0] == "tmpfs" and m[4] == "/"
                 and "rw" in m[5].split(",") and "size=" not in m[2]],
}), flush=True)
os.read(int(sys.argv[2]), 1)  # until the gateway has looked at this process from the host
"""

# The gateway's side: run PRIVILEGE jailed; its report, with its uid as the host sees it.
LOOK = r"""
def look(jail, program, hidden):
    import json, socket, subprocess
    from pathlib import Path
    ours, theirs = socket.socketpair()
    with theirs:
        argv = jail.python("-c", program, hidden, str(theirs.fileno()))
        process = jail.spawn(argv, pass_fds=[theirs.fileno()], stdout=subprocess.PIPE)
    with process:
        try:
            report = json.loads(process.stdout.readline())
            children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text()
            status = Path(f"/proc/{children.split()[0]}/status").read_text()
            uids = next(line for line in status.splitlines() if line.startswith("Uid:"))
            report["seen_from_host"] = sorted(set(map(int, uids.split()[1:])))
        finally:
            ours.close()  # the jailed program ends
    return report
"""
exec(LOOK)  # noqa: S102 - defines look(), also run by the unprivileged gateway below


@pytest.fixture(scope="module")
def jail():
    return Jail(limits=SandboxLimits(memory_mb=1024))


def test_no_secret_of_the_gateway_can_be_read_from_inside_the_jail(jail, monkeypatch):
    """The gateway's environment, memory and files are nowhere a jailed worker can read."""
    secret = secrets.token_hex(16)
    monkeypatch.setenv("BASTION_PASSPHRASE", secret)
    monkeypatch.setenv("BASTION_TEST_TOKEN", secret)
    ours, theirs = socket.socketpair()
    passed = theirs.fileno()
    try:
        process = jail.spawn(
            jail.python("-c", SNOOP, str(theirs.fileno())),
            pass_fds=[theirs.fileno()],
            stdout=subprocess.PIPE,
        )
        launched = Path(f"/proc/{process.pid}/environ").read_bytes()
        out, _ = process.communicate(timeout=120)
    finally:
        ours.close()
        theirs.close()
    report = json.loads(out)
    assert secret.encode() not in bytes.fromhex(report["seen"])
    assert secret.encode() not in launched  # bwrap itself starts without it
    assert report["pids"] == [1] and report["self"] == 1  # the worker is alone: no bwrap
    assert report["ppid"] == 0 and report["parent"] == "FileNotFoundError"
    assert report["fds"] == [0, 1, 2, passed]  # stdio and its socket, nothing else


@pytest.mark.skipif(os.geteuid() != 0, reason="the gateway must run as root")
def test_a_gateway_running_as_root_jails_workers_as_host_nobody(jail):
    """Run by root, the jail is host uid 65534: /proc/sys, sysrq and / are not writable."""
    with tempfile.TemporaryDirectory(dir=sys.prefix) as workspace:
        jail = Jail(limits=SandboxLimits(memory_mb=1024), hidden=[Path(workspace)])
        report = look(jail, PRIVILEGE, workspace)  # noqa: F821 - defined by exec(LOOK)
        assert list(Path(workspace).iterdir()) == []
    assert report.pop("host_uid") == 65534  # the jail's user namespace is the host's child
    assert report.pop("seen_from_host") == [65534]
    import bastion

    bound = [Path("/usr"), Path(sys.base_prefix), Path(sys.prefix), Path(bastion.__file__).parent]
    lookups = ["1 0 1"] if needs_host_root([p.resolve() for p in bound]) else []
    assert report.pop("uid_map") == sorted(["65534 65534 1", *lookups])  # never 0 -> 0
    _assert_confined(report)


def test_the_jail_is_read_only_tmp_included(jail):
    """Writes to /, /dev, /usr, /proc/sys and /tmp all fail; no tmpfs is writable and uncapped."""
    report = look(jail, PRIVILEGE, "/tmp/none")  # noqa: F821, S108 - defined by exec(LOOK)
    report.pop("host_uid")
    report.pop("uid_map")
    assert 0 not in report.pop("seen_from_host")
    report["hidden"] = "OSError"  # nothing hidden in this jail
    _assert_confined(report)


def _assert_confined(report):
    if report["sysrq"] == "FileNotFoundError":  # a kernel without magic SysRq
        report["sysrq"] = "PermissionError"
    assert report == {
        "uid": 65534,
        "core_pattern": "FileNotFoundError",  # /proc/sys is an empty read-only tmpfs
        "hostname": "FileNotFoundError",
        "aslr": "FileNotFoundError",
        "sysrq": "PermissionError",  # root's, and the jail is not root (or no such file)
        "mkdir_proc_sys": "OSError",
        "root": "OSError",  # read-only root
        "root_dir": "OSError",
        "dev": "OSError",
        "dev_shm": "OSError",
        "usr": "OSError",
        "hidden": "OSError",  # the workspace's cover is read-only too
        "tmp": "OSError",  # /tmp is a read-only folder: nothing is writable
        "tmp_flood": "OSError",
        "uncapped": [],
    }


UNPRIVILEGED_GATEWAY = r"""
import json, sys
sys.path[:0] = json.loads(sys.argv[1])
from bastion.sandbox import Jail, SandboxLimits
exec(sys.argv[3])
jail = Jail(limits=SandboxLimits(memory_mb=1024))
print(json.dumps(look(jail, sys.argv[2], "/tmp/none")))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="starts the gateway's side as uid 65534")
def test_a_gateway_running_unprivileged_jails_workers_as_itself():
    """Run by uid 65534, bubblewrap maps the jail to 65534: the same confinement."""
    python = _python_for(65534)
    if python is None:
        pytest.skip("no Python interpreter that uid 65534 may run")
    import bastion

    paths = [p for p in sys.path if p.endswith("site-packages")]
    paths.append(str(Path(bastion.__file__).resolve().parent.parent))
    result = subprocess.run(
        [python, "-I", "-c", UNPRIVILEGED_GATEWAY, json.dumps(paths), PRIVILEGE, LOOK],
        user=65534,
        group=65534,
        extra_groups=[],
        capture_output=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin"},
        cwd="/",
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    report = json.loads(result.stdout)
    report.pop("host_uid")  # bubblewrap nests two user namespaces: not the host's view
    report.pop("uid_map")
    assert report.pop("seen_from_host") == [65534]
    report["hidden"] = "OSError"
    _assert_confined(report)


def _python_for(uid):
    """The test's Python if ``uid`` may run it, else the system's of the same version."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (sys.executable, shutil.which(version, path="/usr/bin")):
        if candidate is None:
            continue
        try:
            ran = subprocess.run(
                [candidate, "-I", "-c", "pass"],
                user=uid,
                group=uid,
                extra_groups=[],
                capture_output=True,
                cwd="/",
                check=False,
            )
        except PermissionError:
            continue
        if ran.returncode == 0:
            return candidate
    return None


def test_host_root_is_mapped_only_for_folders_only_root_may_search(tmp_path):
    """A folder reachable by uid 65534 needs no host root in the jail's user namespace."""
    open_folder = tmp_path / "open" / "python"
    open_folder.mkdir(parents=True)
    closed = tmp_path / "closed"
    (closed / "python").mkdir(parents=True)
    for folder in (tmp_path, tmp_path / "open", open_folder):
        folder.chmod(0o755)
    closed.chmod(0o700)
    parents_open = all(p.stat().st_mode & 0o001 for p in tmp_path.parents)
    assert needs_host_root([open_folder]) is not parents_open
    assert needs_host_root([closed / "python"]) is True
    assert needs_host_root([Path("/usr")]) is False


NESTED = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.setns(int(sys.argv[1]), 0x10000000) != 0:
    raise SystemExit(f"setns: {os.strerror(ctypes.get_errno())}")
print("unshare", libc.unshare(0x10000000), ctypes.get_errno())
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="the gateway's own user namespace is root's")
def test_no_user_namespace_can_be_made_inside_the_jails_namespace():
    """The jail's user namespace allows no namespace below it (ENOSPC), seccomp aside."""
    from bastion.sandbox.identity import jail_user_namespace

    namespace = jail_user_namespace(map_host_root=False)
    result = subprocess.run(
        [sys.executable, "-I", "-c", NESTED, str(namespace)],
        pass_fds=[namespace],
        capture_output=True,
        check=True,
        timeout=60,
    )
    assert result.stdout.split() == [b"unshare", b"-1", b"28"]  # ENOSPC
