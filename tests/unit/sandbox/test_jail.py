"""A hostile program inside the real bubblewrap jail: every escape attempt fails."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bastion.errors import ConfigError
from bastion.sandbox import Jail, SandboxLimits
from bastion.sandbox.seccomp import worker_filter

# Runs inside the jail; prints one JSON object: attempt → the error it met (or "ok").
HOSTILE = r"""
import json, os, socket, sys, threading
port, keys = int(sys.argv[1]), sys.argv[2]
def attempt(action):
    try:
        action()
        return "ok"
    except BaseException as exc:
        return type(exc).__name__
def fork_bomb():
    while True:
        if os.fork() == 0:
            os._exit(0)
def thread():
    worker = threading.Thread(target=lambda: None)
    worker.start()
    worker.join()
report = {
    "connect": attempt(lambda: socket.create_connection(("127.0.0.1", port), timeout=2)),
    "read_keys": attempt(lambda: open(keys, "rb").read()),
    "read_etc": attempt(lambda: open("/etc/passwd").read()),
    "write_usr": attempt(lambda: open("/usr/planted", "w")),
    "write_python": attempt(lambda: open(os.path.join(sys.prefix, "planted"), "w")),
    "fill_tmp": attempt(lambda: open("/tmp/big", "wb").write(b"x" * 64 * 1024 * 1024)),
    "fork_bomb": attempt(fork_bomb),
    "spawn": attempt(lambda: __import__("subprocess").run(["/usr/bin/true"])),
    "memory": attempt(lambda: bytearray(3 * 1024**3)),
    "open_files": attempt(lambda: [open("/proc/self/stat") for _ in range(1000)]),
    "thread": attempt(thread),
    "write_tmp": attempt(lambda: open("/tmp/small", "w").write("fine")),
    "uid": os.getuid(),
}
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def jail():
    return Jail(limits=SandboxLimits(memory_mb=1024))


def test_a_hostile_program_can_do_nothing_outside_its_jail(jail, make_workspace):
    workspace = make_workspace()
    keys = next(p for p in workspace.settings.home.rglob("*") if p.is_file())
    with socket.create_server(("127.0.0.1", 0)) as listener:  # a service on the host
        port = listener.getsockname()[1]
        process = jail.spawn(
            jail.python("-c", HOSTILE, str(port), str(keys)), stdout=subprocess.PIPE
        )
        out, _ = process.communicate(timeout=60)
    report = json.loads(out)
    assert report == {
        "connect": "PermissionError",  # no IP socket at all (seccomp), nor any interface
        "read_keys": "FileNotFoundError",  # the workspace is not in the jail
        "read_etc": "FileNotFoundError",
        "write_usr": "OSError",  # read-only
        "write_python": "OSError",
        "fill_tmp": "OSError",  # /tmp is read-only
        "fork_bomb": "PermissionError",  # the first fork fails (seccomp)
        "spawn": "PermissionError",
        "memory": "MemoryError",  # address-space limit
        "open_files": "OSError",  # EMFILE
        "thread": "ok",  # threads stay allowed
        "write_tmp": "OSError",
        "uid": 65534,
    }
    assert list(Path(sys.prefix).glob("planted")) == []


def test_the_workspace_is_hidden_even_inside_a_bound_folder(tmp_path):
    hidden = Path(sys.prefix) / "ws"  # as if the workspace lived in the Python prefix
    command = Jail(limits=SandboxLimits(), hidden=[hidden, tmp_path]).command(["x"], seccomp_fd=9)
    joined = " ".join(command)
    assert f"--tmpfs {hidden}" in joined
    assert str(tmp_path) not in joined  # not bound, so nothing to hide


def test_the_filter_covers_both_architectures_and_refuses_others():
    for machine in ("x86_64", "aarch64"):
        program = worker_filter(machine)
        assert len(program) % 8 == 0 and len(program) > 8 * 20
    with pytest.raises(ConfigError):
        worker_filter("riscv64")


def test_the_jail_starts_python(jail):
    jail.check()


def test_bastion_under_tmp_stays_visible_below_the_jails_tmp():
    """The jail's tmp is a folder, not a mount over binds: a checkout below it still runs."""
    command = Jail(limits=SandboxLimits()).command(["x"], seccomp_fd=9)
    assert command[command.index("--dir") + 1] == "/tmp"  # noqa: S108 - the jail's own /tmp
    tmpfs = [command[i + 1] for i, a in enumerate(command) if a == "--tmpfs"]
    assert "/tmp" not in tmpfs  # noqa: S108


def test_registration_loads_the_model_in_the_jail_not_in_process(make_workspace, tmp_path):
    """A model onnx accepts but onnxruntime cannot load is refused by the jailed check."""
    import onnx
    from onnx import TensorProto, helper

    from bastion.errors import InvalidInput
    from bastion.registry import OutputPolicy

    value = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    graph = helper.make_graph(
        [helper.make_node("Mystery", ["x"], ["y"], domain="com.example")],
        "g",
        [value],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    path = tmp_path / "mystery.onnx"
    path.write_bytes(model.SerializeToString())
    onnx.checker.check_model(model)
    with pytest.raises(InvalidInput, match="checked in the sandbox"):
        make_workspace().registry.register(
            path, name="m", version=None, output_policy=OutputPolicy()
        )


def test_killing_a_jail_ends_its_worker_too(jail):
    """Jail.kill ends bubblewrap and the worker, PID 1 of its namespace, together."""
    process = jail.spawn(jail.python("-c", "import time; time.sleep(600)"))
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    worker = None
    for _ in range(600):
        worker = worker or children.read_text().split()
        if worker:
            break
        time.sleep(0.05)
    assert worker
    jail.kill(process)
    process.wait(timeout=30)
    for _ in range(600):
        if not Path(f"/proc/{worker[0]}").exists():
            break
        time.sleep(0.05)
    assert not Path(f"/proc/{worker[0]}").exists()


def test_a_worker_whose_gateway_is_gone_exits(jail):
    """When the gateway's end of its socket closes, a jailed worker ends by itself."""
    process, ours = jail.spawn_worker()
    ours.close()
    assert process.wait(timeout=60) != 0  # no model ever came


def _group(pgid):
    """Every live (not zombie) process of process group ``pgid``, scanned from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # not a process, or gone meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def _await(condition):
    for _ in range(1200):
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_a_jail_spawned_from_a_thread_that_exits_keeps_bubblewrap(jail):
    """A thread that spawned a jail and exited leaves bubblewrap alive (no thread-bound death)."""
    box = {}
    spawner = threading.Thread(target=lambda: box.update(p=jail.spawn_worker()))
    spawner.start()
    spawner.join()
    process, ours = box["p"]
    try:
        assert _await(lambda: len(_group(process.pid)) == 2)  # bubblewrap and the worker
        time.sleep(1)  # a death signal tied to the thread would have fired by now
        assert process.poll() is None
        assert len(_group(process.pid)) == 2
    finally:
        ours.close()
        jail.kill(process)
        process.wait(timeout=60)
    assert _await(lambda: not _group(process.pid))


def test_kill_ends_every_process_of_the_jail_even_after_bubblewrap_is_reaped(jail):
    """A worker whose bubblewrap died and was reaped is still killed by Jail.kill."""
    hostile = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(600)"
    process = jail.spawn(jail.python("-c", hostile))
    assert _await(lambda: len(_group(process.pid)) == 2)
    os.kill(process.pid, signal.SIGKILL)  # bubblewrap alone dies, as a death signal did it
    process.wait(timeout=60)
    assert _await(lambda: len(_group(process.pid)) == 1)  # the worker, re-parented, lives on
    jail.kill(process)
    assert _await(lambda: not _group(process.pid))


# Runs inside the jail; every way to get a pseudo-terminal, and what it met.
TERMINALS = r"""
import json, os, pty
def attempt(action):
    try:
        action()
        return "ok"
    except OSError as exc:
        return type(exc).__name__
# What is mounted on /dev/pts, topmost last.
pts = [line.split(" - ")[1].split()[0] for line in open("/proc/self/mountinfo")
       if line.split()[4] == "/dev/pts"]
print(json.dumps({
    "openpty": attempt(os.openpty),
    "pty_fork": attempt(pty.openpty),
    "ptmx": attempt(lambda: os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY)),
    "pts_ptmx": attempt(lambda: os.open("/dev/pts/ptmx", os.O_RDWR | os.O_NOCTTY)),
    "pts": os.listdir("/dev/pts"),
    "pts_mount": pts[-1],
}))
"""


def test_a_jail_can_open_no_pseudo_terminal(jail):
    """/dev/ptmx dangles and no devpts is mounted: no PTY of the host-wide pool can be taken."""
    process = jail.spawn(jail.python("-c", TERMINALS), stdout=subprocess.PIPE)
    out, _ = process.communicate(timeout=120)
    assert json.loads(out) == {
        "openpty": "FileNotFoundError",
        "pty_fork": "OSError",  # pty.openpty: "out of pty devices"
        "ptmx": "FileNotFoundError",
        "pts_ptmx": "FileNotFoundError",
        "pts": [],
        "pts_mount": "tmpfs",  # the jail's devpts is covered
    }


# Runs inside the jail; tries to lift its CPU limits, prints them and what it met.
CPU_RAISE = r"""
import json, resource
def attempt(limits):
    try:
        resource.setrlimit(resource.RLIMIT_CPU, limits)
        return "ok"
    except (OSError, ValueError) as exc:
        return type(exc).__name__
soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
inf = resource.RLIM_INFINITY
print(json.dumps({
    "limits": [soft, hard],
    "unlimited": attempt((inf, inf)),
    "hard_plus_one": attempt((hard + 1, hard + 1)),
    "soft_above_hard": attempt((hard + 1, hard)),
    "lower_soft": attempt((1, hard)),  # allowed: the worker does this per request
}))
"""


def test_a_jail_cannot_raise_its_cpu_limit(jail):
    """The hard CPU limit is the worker's lifetime budget: setrlimit cannot lift it."""
    process = jail.spawn(jail.python("-c", CPU_RAISE), stdout=subprocess.PIPE)
    out, _ = process.communicate(timeout=120)
    budget = jail.limits.lifetime_cpu_seconds
    assert json.loads(out) == {
        "limits": [budget, budget],
        "unlimited": "ValueError",  # "not allowed to raise maximum limit"
        "hard_plus_one": "ValueError",
        "soft_above_hard": "ValueError",
        "lower_soft": "ok",
    }


def test_a_spinning_jail_dies_at_its_lifetime_cpu_budget():
    """Even PID 1 with SIGXCPU ignored is killed once it has spent its lifetime CPU budget."""
    jail = Jail(limits=SandboxLimits(memory_mb=1024, lifetime_cpu_seconds=2))
    spin = "import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True: pass"
    process = jail.spawn(jail.python("-c", spin))
    try:
        code = process.wait(timeout=300)  # 2 s of CPU; generous for a loaded machine
    finally:
        jail.kill(process)
    assert code != 0
    assert _await(lambda: not _group(process.pid))


# Runs inside the jail; tries to create inodes (files, folders, FIFOs, links, sockets)
# everywhere it might, each of which would cost the host's kernel memory.
INODES = r"""
import json, os, socket
def attempt(action):
    try:
        action()
        return "ok"
    except OSError as exc:
        return type(exc).__name__
def bind(path):
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(path)
def many(folder):
    for i in range(1000):
        open(os.path.join(folder, f"f{i}"), "x").close()
places = dict.fromkeys(["/tmp", os.environ["HOME"], os.getcwd(), "/", "/dev", "/dev/shm",
                        "/dev/pts", "/proc/sys", "/usr"])  # HOME and the cwd are /tmp
report = {}
for place in places:
    report[place] = {
        "files": attempt(lambda: many(place)),
        "mkdir": attempt(lambda: os.mkdir(os.path.join(place, "d"))),
        "fifo": attempt(lambda: os.mkfifo(os.path.join(place, "p"))),
        "symlink": attempt(lambda: os.symlink("/", os.path.join(place, "l"))),
        "socket": attempt(lambda: bind(os.path.join(place, "s"))),
    }
print(json.dumps(report))
"""


def test_a_jail_can_create_no_inode_anywhere(jail):
    """No file, folder, FIFO, link or socket can be made in /tmp or anywhere else in the jail."""
    process = jail.spawn(jail.python("-c", INODES), stdout=subprocess.PIPE)
    out, _ = process.communicate(timeout=120)
    report = json.loads(out)
    made = {place: [k for k, v in tried.items() if v == "ok"] for place, tried in report.items()}
    assert made == {place: [] for place in report}
    assert {"/tmp", "/", "/dev/shm"} <= report.keys()  # noqa: S108 - the jail's, tried inside
