"""A seccomp filter (classic BPF): what a sandboxed worker may ask of the kernel.

bubblewrap installs it (``--seccomp FD``) just before it runs the worker. Threads stay
allowed (``clone`` with ``CLONE_THREAD`` and no namespace flag: onnxruntime and numpy use
them); ``fork``, ``vfork``, process-making ``clone`` and ``clone3`` fail, so a fork bomb
stops at its first fork. ``clone3`` fails with ENOSYS, the answer that makes the C library
fall back to ``clone`` for threads. ``socket`` and ``socketpair`` work for Unix sockets
only. Every family of calls a model loader never needs fails with EPERM (``DENIED``, by
family below): namespaces and mounts (the new mount API too), reaching other processes
(ptrace, process_vm_*, pidfd_*, kcmp), io_uring and kernel AIO, file handles and
fanotify, BPF, perf, keyrings, kernel modules, kexec, the kernel log, execution domains
(personality), x86 I/O ports and LDT, and the host's clock, names, swap, quotas,
accounting and reboot. A call from a foreign ABI (x32, 32-bit) kills the process, so no
syscall number can be smuggled past the checks. Anything else is allowed: the list is
what a worker is refused, each family tested from inside a real jail.

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


_AF_UNIX = 1
# clone flags that make namespaces: refused even to a thread.
_CLONE_NAMESPACES = 0x7E020080  # NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME

# The audit arch value of each architecture the filter is written for.
_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}

# Syscall numbers: x86_64 (asm/unistd_64.h), then aarch64 (asm-generic/unistd.h); None
# where the call does not exist on that architecture.
_NUMBERS: dict[str, tuple[int | None, int | None]] = {
    "clone": (56, 220),
    "fork": (57, None),
    "vfork": (58, None),
    "clone3": (435, 435),
    "socket": (41, 198),
    "socketpair": (53, 199),
    # namespaces and mounts
    "mount": (165, 40),
    "umount2": (166, 39),
    "pivot_root": (155, 41),
    "chroot": (161, 51),
    "unshare": (272, 97),
    "setns": (308, 268),
    "open_tree": (428, 428),
    "move_mount": (429, 429),
    "fsopen": (430, 430),
    "fsconfig": (431, 431),
    "fsmount": (432, 432),
    "fspick": (433, 433),
    "mount_setattr": (442, 442),
    # other processes
    "ptrace": (101, 117),
    "process_vm_readv": (310, 270),
    "process_vm_writev": (311, 271),
    "process_madvise": (440, 440),
    "process_mrelease": (448, 448),
    "kcmp": (312, 272),
    "pidfd_open": (434, 434),
    "pidfd_getfd": (438, 438),
    "pidfd_send_signal": (424, 424),
    "migrate_pages": (256, 238),
    "move_pages": (279, 239),
    # asynchronous I/O (io_uring and the older kernel AIO)
    "io_uring_setup": (425, 425),
    "io_uring_enter": (426, 426),
    "io_uring_register": (427, 427),
    "io_setup": (206, 0),
    "io_destroy": (207, 1),
    "io_submit": (209, 2),
    "io_cancel": (210, 3),
    "io_getevents": (208, 4),
    "io_pgetevents": (333, 292),
    # file handles and file-system notification
    "name_to_handle_at": (303, 264),
    "open_by_handle_at": (304, 265),
    "fanotify_init": (300, 262),
    "fanotify_mark": (301, 263),
    # the kernel itself: BPF, keyrings, perf, modules, kexec, its log, execution domains
    "bpf": (321, 280),
    "perf_event_open": (298, 241),
    "userfaultfd": (323, 282),
    "keyctl": (250, 219),
    "add_key": (248, 217),
    "request_key": (249, 218),
    "kexec_load": (246, 104),
    "kexec_file_load": (320, 294),
    "init_module": (175, 105),
    "finit_module": (313, 273),
    "delete_module": (176, 106),
    "syslog": (103, 116),
    "personality": (135, 92),
    "lookup_dcookie": (212, 18),
    "remap_file_pages": (216, 234),
    "nfsservctl": (180, 42),
    "uselib": (134, None),
    "modify_ldt": (154, None),
    "iopl": (172, None),
    "ioperm": (173, None),
    "ustat": (136, None),
    "sysfs": (139, None),
    "_sysctl": (156, None),
    # the host: clock, names, swap, quotas, accounting, reboot, terminals
    "settimeofday": (164, 170),
    "clock_settime": (227, 112),
    "adjtimex": (159, 171),
    "clock_adjtime": (305, 266),
    "sethostname": (170, 161),
    "setdomainname": (171, 162),
    "swapon": (167, 224),
    "swapoff": (168, 225),
    "quotactl": (179, 60),
    "quotactl_fd": (443, 443),
    "acct": (163, 89),
    "reboot": (169, 142),
    "vhangup": (153, 58),
}
# Calls checked on their arguments rather than refused outright.
_CHECKED = ("clone", "clone3", "socket", "socketpair")
DENIED = tuple(name for name in _NUMBERS if name not in _CHECKED)


def syscall_numbers(machine: str) -> dict[str, int]:
    """The filter's syscalls and their numbers on ``machine`` (x86_64 or aarch64)."""
    column = list(_AUDIT_ARCH).index(machine)
    found = {name: numbers[column] for name, numbers in _NUMBERS.items()}
    return {name: number for name, number in found.items() if number is not None}


def worker_filter(machine: str | None = None) -> bytes:
    """The filter for this machine's architecture, as bubblewrap reads it.

    Raises:
        ConfigError: the architecture has no filter here (the sandbox refuses to start).
    """
    machine = machine or platform.machine()
    if machine not in _AUDIT_ARCH:
        raise ConfigError(f"The model sandbox has no seccomp filter for {machine}.")
    numbers = syscall_numbers(machine)
    program: list[_Step] = [
        _load(_ARCH),
        _jump(_JEQ_K, _AUDIT_ARCH[machine], if_false="kill"),
        _load(_NR),
    ]
    if machine == "x86_64":
        program.append(_jump(_JGE_K, _X32_BIT, if_true="kill"))
    program += [
        _jump(_JEQ_K, nr, if_true="eperm") for name, nr in numbers.items() if name in DENIED
    ]
    program += [
        _jump(_JEQ_K, numbers["clone"], if_true="clone"),
        _jump(_JEQ_K, numbers["clone3"], if_true="enosys"),
        _jump(_JEQ_K, numbers["socket"], if_true="family"),
        _jump(_JEQ_K, numbers["socketpair"], if_true="family"),
        _return(_ALLOW),
        "family",  # sockets: Unix ones only (the worker's socket pair); no netlink, no packet
        _load(_ARG0),
        _jump(_JEQ_K, _AF_UNIX, if_true="allow", if_false="eperm"),
        "clone",  # threads only, and no namespaces for them
        _load(_ARG0),
        _jump(_JSET_K, _CLONE_NAMESPACES, if_true="eperm"),
        _jump(_JSET_K, _CLONE_THREAD, if_true="allow"),
        "eperm",
        _return(_ERRNO | errno.EPERM),
        "enosys",
        _return(_ERRNO | errno.ENOSYS),
        "kill",
        _return(_KILL_PROCESS),
        "allow",
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
