"""The seccomp filter, tried family by family with raw system calls inside the real jail."""

import json
import platform
import re
import subprocess
from pathlib import Path

import pytest

from bastion.sandbox import Jail, SandboxLimits
from bastion.sandbox.seccomp import DENIED, syscall_numbers

# Each family a model loader never needs; every call in it must fail with EPERM.
FAMILIES = {
    "io_uring": ["io_uring_setup", "io_uring_enter", "io_uring_register"],
    "kernel_aio": [
        "io_setup",
        "io_destroy",
        "io_submit",
        "io_cancel",
        "io_getevents",
        "io_pgetevents",
    ],
    "other_processes": [
        "ptrace",
        "process_vm_readv",
        "process_vm_writev",
        "process_madvise",
        "process_mrelease",
        "kcmp",
        "pidfd_open",
        "pidfd_getfd",
        "pidfd_send_signal",
        "migrate_pages",
        "move_pages",
    ],
    "file_handles": ["name_to_handle_at", "open_by_handle_at", "fanotify_init", "fanotify_mark"],
    "mounts": [
        "mount",
        "umount2",
        "pivot_root",
        "chroot",
        "open_tree",
        "move_mount",
        "fsopen",
        "fsconfig",
        "fsmount",
        "fspick",
        "mount_setattr",
    ],
    "namespaces": ["unshare", "setns"],
    "kernel": [
        "bpf",
        "perf_event_open",
        "userfaultfd",
        "keyctl",
        "add_key",
        "request_key",
        "init_module",
        "finit_module",
        "delete_module",
        "kexec_load",
        "kexec_file_load",
        "syslog",
        "personality",
        "lookup_dcookie",
        "remap_file_pages",
        "nfsservctl",
    ],
    "x86_only": ["iopl", "ioperm", "modify_ldt", "uselib", "ustat", "sysfs", "_sysctl"],
    "host_clock": ["settimeofday", "clock_settime", "adjtimex", "clock_adjtime"],
    "host_admin": [
        "sethostname",
        "setdomainname",
        "swapon",
        "swapoff",
        "quotactl",
        "quotactl_fd",
        "acct",
        "reboot",
        "vhangup",
    ],
}

# Runs inside the jail: each named call with all-zero arguments; its errno (0: it passed).
CALLS = r"""
import ctypes, json, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
results = {}
for name, number in json.loads(sys.argv[1]).items():
    ctypes.set_errno(0)
    answer = libc.syscall(ctypes.c_long(number), *[ctypes.c_long(0)] * 6)
    results[name] = ctypes.get_errno() if answer == -1 else 0
print(json.dumps(results))
"""

# Runs inside the jail: sockets of each family, as the socket module makes them.
SOCKETS = r"""
import json, socket
def attempt(make):
    try:
        make().close()
        return "ok"
    except OSError as exc:
        return type(exc).__name__
families = {"inet": socket.AF_INET, "inet6": socket.AF_INET6, "netlink": socket.AF_NETLINK,
            "packet": socket.AF_PACKET, "unix": socket.AF_UNIX}
report = {name: attempt(lambda f=f: socket.socket(f, socket.SOCK_DGRAM if f != socket.AF_PACKET
          else socket.SOCK_RAW)) for name, f in families.items()}
report["pair_unix"] = attempt(lambda: socket.socketpair(socket.AF_UNIX)[0])
report["pair_inet"] = attempt(lambda: socket.socketpair(socket.AF_INET)[0])
print(json.dumps(report))
"""
EPERM = 1


@pytest.fixture(scope="module")
def jail():
    return Jail(limits=SandboxLimits(memory_mb=1024))


def run(jail, program, *arguments):
    process = jail.spawn(jail.python("-c", program, *arguments), stdout=subprocess.PIPE)
    out, _ = process.communicate(timeout=60)
    return json.loads(out)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_denied_family_fails_with_eperm_inside_the_jail(jail, family):
    """Every call of the family, made raw through ctypes in the jail, gets EPERM."""
    numbers = syscall_numbers(platform.machine())
    calls = {name: numbers[name] for name in FAMILIES[family] if name in numbers}
    if not calls:
        pytest.skip(f"no call of {family} on {platform.machine()}")
    assert run(jail, CALLS, json.dumps(calls)) == dict.fromkeys(calls, EPERM)


def test_only_unix_sockets_can_be_made(jail):
    """socket() and socketpair() of any family but AF_UNIX are refused (EPERM)."""
    assert run(jail, SOCKETS) == {
        "inet": "PermissionError",
        "inet6": "PermissionError",
        "netlink": "PermissionError",
        "packet": "PermissionError",
        "unix": "ok",
        "pair_unix": "ok",
        "pair_inet": "PermissionError",
    }


def test_every_denied_call_is_in_a_tested_family():
    """A call added to the filter is added to a family here, so it is tried in the jail."""
    assert set(DENIED) - {"fork", "vfork"} <= {
        name for names in FAMILIES.values() for name in names
    }


HEADERS = {
    "x86_64": Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h"),
    "aarch64": Path("/usr/include/asm-generic/unistd.h"),
}


@pytest.mark.parametrize("machine", sorted(HEADERS))
def test_the_numbers_are_the_kernel_headers(machine):
    """Every syscall number of the filter is the one the kernel's uapi header defines."""
    header = HEADERS[machine]
    if not header.exists():
        pytest.skip(f"{header} not installed")
    defined = {
        name: int(number)
        for name, number in re.findall(r"#define __NR(?:3264)?_(\w+)\s+(\d+)\b", header.read_text())
    }
    numbers = syscall_numbers(machine)
    assert {name: defined.get(name) for name in numbers} == numbers
