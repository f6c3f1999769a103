"""A jail's standard error: a pipe the gateway reads, bounds, escapes and labels."""

import json
import logging
import os
import subprocess
import sys
import threading
import time

import pytest

from bastion.sandbox import Jail, SandboxLimits
from bastion.sandbox.logs import BURST, MAX_LINE, RATE

# Runs inside the jail: lines meant to pass for the gateway's own, and a look at fd 2.
FORGE = r"""
import json, os, stat, sys
err = sys.stderr
err.write("ordinary\n")
err.write("\nINFO bastion.audit principal=admin event=key.rotated ok\n")
err.write("x\r2026-12-04 12:00:00 WARNING bastion.serving forged\n")
err.write("\x1b[2K\x1b[1Gcolour\x1b[0m and a\x00nul\n")
err.write("back\\slash \\n literal\n")
err.write("unfinished")
err.flush()
def attempt(action):
    try:
        return action()
    except OSError as exc:
        return type(exc).__name__
print(json.dumps({
    "fd2": os.readlink("/proc/self/fd/2"),
    "fifo": stat.S_ISFIFO(os.fstat(2).st_mode),
    "truncate": attempt(lambda: os.truncate(2, 0)),
}))
"""

FLOOD = r"""
import os, sys
line = b"flood " + b"y" * 90 + b"\n"
while True:
    os.write(2, line * 100)
"""

LONG_LINE = r"""
import os
import sys
os.write(2, b"z" * (4 * 1024 * 1024) + b"\nafter\n")
"""


@pytest.fixture(scope="module")
def jail():
    return Jail(limits=SandboxLimits(memory_mb=1024))


@pytest.fixture
def records(caplog):
    caplog.set_level(logging.WARNING, logger="bastion.sandbox")
    return lambda: [r for r in caplog.records if r.getMessage().startswith("jail ")]


def _readers_end():
    deadline = time.monotonic() + 30
    while any(t.name == "bastion-jail-logs" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "a log reader outlived its jails"
        time.sleep(0.05)


def test_a_jail_cannot_forge_or_hide_in_the_gateways_log(jail, records):
    """Newlines, CR and ANSI from a jail come out escaped, one labelled line each."""
    process = jail.spawn(jail.python("-c", FORGE), stdout=subprocess.PIPE, label="worker of m@1")
    report = json.loads(process.communicate(timeout=60)[0])
    _readers_end()
    assert report["fd2"].startswith("pipe:") and report["fifo"]  # not the gateway's log file
    assert report["truncate"] == "OSError"
    prefix = f"jail worker of m@1 (pid {process.pid}): "
    messages = [r.getMessage() for r in records()]
    assert all(m.startswith(prefix) for m in messages)
    assert [m.removeprefix(prefix) for m in messages] == [
        "ordinary",
        "",
        "INFO bastion.audit principal=admin event=key.rotated ok",
        "x\\r2026-12-04 12:00:00 WARNING bastion.serving forged",
        "\\x1b[2K\\x1b[1Gcolour\\x1b[0m and a\\x00nul",
        "back\\\\slash \\\\n literal",
        "unfinished",
    ]
    assert all(r.levelno == logging.WARNING and r.name == "bastion.sandbox" for r in records())


def test_a_flood_is_bounded_and_blocks_the_flooder_not_the_gateway(jail, records):
    """A jail writing without end gets its burst and rate of lines; the rest is not read."""
    started = time.monotonic()
    process = jail.spawn(jail.python("-c", FLOOD))
    time.sleep(2)
    jail.kill(process)
    process.wait()
    _readers_end()
    elapsed = time.monotonic() - started
    allowance = BURST + RATE * elapsed + 1
    logged = [r for r in records() if "flood" in r.getMessage()]
    assert BURST <= len(logged) <= allowance
    dropped = [r.getMessage() for r in records() if "lines dropped" in r.getMessage()]
    read = len(logged) + sum(int(m.split(": ")[1].split()[0]) for m in dropped)
    assert read <= allowance * (MAX_LINE + 1) / 97 + 1  # a flood line is 97 bytes


def test_a_long_line_is_cut(jail, records):
    """A line longer than MAX_LINE keeps MAX_LINE bytes and says it was cut."""
    process = jail.spawn(jail.python("-c", LONG_LINE))
    process.wait(timeout=60)
    _readers_end()
    texts = [r.getMessage().split("): ", 1)[1] for r in records()]
    assert texts == ["z" * MAX_LINE + " [cut]", "after"]


def test_readers_end_with_their_jails_and_leak_no_descriptor(jail):
    """When every jail has ended, no reader thread is left and no descriptor stays open."""
    _readers_end()
    before = sorted(os.listdir("/proc/self/fd"))
    processes = [
        jail.spawn(jail.python("-c", "import sys; sys.stderr.write('bye')")) for _ in range(5)
    ]
    for process in processes:
        process.wait(timeout=60)
    _readers_end()
    assert sorted(os.listdir("/proc/self/fd")) == before


def test_a_failed_check_logs_bubblewraps_message_before_it_raises(caplog):
    """The reason a jail cannot start is in the log by the time check() raises."""
    from pathlib import Path

    from bastion.errors import ConfigError

    caplog.set_level(logging.WARNING, logger="bastion.sandbox")
    missing = Path(sys.prefix) / "no-such-workspace"  # inside a read-only bind: no cover
    broken = Jail(limits=SandboxLimits(), hidden=[missing])
    with pytest.raises(ConfigError):
        broken.check()
    assert any(
        r.getMessage().startswith("jail check (pid ") and "bwrap: " in r.getMessage()
        for r in caplog.records
    )
