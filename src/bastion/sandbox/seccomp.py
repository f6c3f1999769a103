"""A seccomp filter (classic BPF) that forbids a sandboxed worker to make processes.

bubblewrap installs it (``--seccomp FD``) just before it runs the worker. Threads stay
allowed (``clone`` with ``CLONE_THREAD``: onnxruntime and numpy use them); ``fork``,
``vfork``, process-making ``clone`` and ``clone3`` fail, so a fork bomb stops at its first
fork. ``clone3`` fails with ENOSYS, the answer that makes the C library fall back to
``clone`` for threads. Calls that reach outside a sandbox — namespaces, mounts, ptrace,
BPF, keyrings, perf — fail with EPERM, and a call from a foreign ABI (x32, 32-bit) kills
the process, so no syscall number can be smuggled past the checks.

The program follows ``struct seccomp_data``: ``nr`` at offset 0, ``arch`` at 4, the
arguments from 16 (little-endian: the low half of ``args[0]`` is at 16).
"""

from __future__ import annotations

import errno
import platform
import struct

from bastion.errors import ConfigError

# BPF instruction classes and modes (linux/bpf_common.h).
_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_JSET_K = 0x45  # BPF_JMP | BPF_JSET | BPF_K
_RET_K = 0x06  # BPF_RET | BPF_K

_ALLOW = 0x7FFF0000
_KILL_PROCESS = 0x80000000
_ERRNO = 0x00050000
_CLONE_THREAD = 0x00010000
_X32_BIT = 0x40000000

_NR, _ARCH, _ARG0 = 0, 4, 16


# Per architecture: the audit arch value, then syscall numbers (asm/unistd_64.h).
_ARCHES: dict[str, tuple[int, dict[str, int]]] = {
    "x86_64": (
        0xC000003E,
        {
            "clone": 56,
            "fork": 57,
            "vfork": 58,
            "clone3": 435,
            "ptrace": 101,
            "mount": 165,
            "umount2": 166,
            "pivot_root": 155,
            "chroot": 161,
            "unshare": 272,
            "setns": 308,
            "keyctl": 250,
            "add_key": 248,
            "request_key": 249,
            "bpf": 321,
            "perf_event_open": 298,
            "userfaultfd": 323,
            "kexec_load": 246,
            "init_module": 175,
            "finit_module": 313,
            "process_vm_writev": 311,
        },
    ),
    "aarch64": (
        0xC00000B7,
        {
            "clone": 220,
            "clone3": 435,
            "ptrace": 117,
            "mount": 40,
            "umount2": 39,
            "pivot_root": 41,
            "chroot": 51,
            "unshare": 97,
            "setns": 268,
            "keyctl": 219,
            "add_key": 217,
            "request_key": 218,
            "bpf": 280,
            "perf_event_open": 241,
            "userfaultfd": 282,
            "kexec_load": 104,
            "init_module": 105,
            "finit_module": 273,
            "process_vm_writev": 271,
        },
    ),
}


def worker_filter(machine: str | None = None) -> bytes:
    """The filter for this machine's architecture, as bubblewrap reads it.

    Raises:
        ConfigError: the architecture has no filter here (the sandbox refuses to start).
    """
    machine = machine or platform.machine()
    if machine not in _ARCHES:
        raise ConfigError(f"The model sandbox has no seccomp filter for {machine}.")
    audit_arch, numbers = _ARCHES[machine]
    denied = [nr for name, nr in numbers.items() if name not in ("clone", "clone3")]
    program: list[_Step] = [
        _load(_ARCH),
        _jump(_JEQ_K, audit_arch, if_false="kill"),
        _load(_NR),
    ]
    if machine == "x86_64":
        program.append(_jump(_JGE_K, _X32_BIT, if_true="kill"))
    program += [_jump(_JEQ_K, nr, if_true="eperm") for nr in denied]
    program += [
        _jump(_JEQ_K, numbers["clone"], if_true="clone"),
        _jump(_JEQ_K, numbers["clone3"], if_true="enosys"),
        _return(_ALLOW),
        "clone",
        _load(_ARG0),
        _jump(_JSET_K, _CLONE_THREAD, if_true="thread"),
        "eperm",
        _return(_ERRNO | errno.EPERM),
        "enosys",
        _return(_ERRNO | errno.ENOSYS),
        "kill",
        _return(_KILL_PROCESS),
        "thread",
        _return(_ALLOW),
    ]
    return _assemble(program)


# An instruction: (code, k, label if true, label if false), None meaning the next one;
# a bare string labels the instruction after it.
_Instruction = tuple[int, int, str | None, str | None]
_Step = str | _Instruction


def _load(offset: int) -> _Instruction:
    return (_LD_W_ABS, offset, None, None)


def _return(verdict: int) -> _Instruction:
    return (_RET_K, verdict, None, None)


def _jump(
    code: int, k: int, *, if_true: str | None = None, if_false: str | None = None
) -> _Instruction:
    return (code, k, if_true, if_false)


def _assemble(program: list[_Step]) -> bytes:
    labels: dict[str, int] = {}
    instructions: list[_Instruction] = []
    for step in program:
        if isinstance(step, str):
            labels[step] = len(instructions)
        else:
            instructions.append(step)

    def offset(label: str | None, at: int) -> int:
        jump = 0 if label is None else labels[label] - at - 1
        if not 0 <= jump <= 255:  # noqa: PLR2004 - classic BPF jumps forward, by a byte
            raise ValueError(f"seccomp jump to {label} out of reach")
        return jump

    code = bytearray()
    for at, (op, k, if_true, if_false) in enumerate(instructions):
        code += struct.pack("=HBBI", op, offset(if_true, at), offset(if_false, at), k)
    return bytes(code)
