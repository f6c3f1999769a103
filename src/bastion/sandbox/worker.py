"""The program that runs one model inside the sandbox.

``python -I -m bastion.sandbox.worker FD CPU_SECONDS``: FD is this worker's end of the
socket pair made by the gateway. The worker reads the model (``LOAD``), answers
``READY``, then serves ``RUN`` frames one at a time until the socket closes. Before each
run it sets its CPU-time limit to what it has used plus ``CPU_SECONDS``, so a run that
spins is killed by SIGXCPU even if the gateway's wall-clock timeout has not yet fired. The
hard limit, set by the jail, is the worker's CPU budget for life and cannot be raised; a
worker whose budget could not cover one more whole run exits after its answer, idle.
The worker is PID 1 of its namespace, and the kernel spares PID 1 every signal it has no
handler for, SIGXCPU included: so the worker handles it, and a thread woken by the handler
(``signal.set_wakeup_fd``, written by the C-level handler even while the model's code holds
the main thread) ends the process.
It imports only numpy, the frame codec and its model's runtime (onnxruntime, or scikit-learn
through skops or the restricted unpickler; ``sandbox/models.py``); it never sees keys, the
database or the network.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import sys
import threading

from bastion.sandbox.frames import (
    FAILED,
    LOAD,
    READY,
    RESULT,
    RUN,
    decode_run,
    encode_tensors,
    frame,
    receive,
)
from bastion.sandbox.models import LoadedModel, load


def main(argv: list[str]) -> int:
    """Serve until the gateway closes the socket; 0 then, 2 on a protocol error."""
    _exit_on_cpu_limit()
    sock = socket.socket(fileno=int(argv[1]))
    cpu_seconds = int(argv[2])
    kind, model = receive(sock)
    if kind != LOAD:
        return 2
    loaded = load(bytes(model))
    del model
    sock.sendall(frame(READY, loaded.signature))
    while True:
        try:
            kind, payload = receive(sock)
        except EOFError:
            return 0
        if kind != RUN:
            return 2
        sock.sendall(_run(loaded, payload, cpu_seconds))
        if _cpu_used() + cpu_seconds > _cpu_budget():  # the next run could not be whole
            return 0  # retire while idle: the pool replaces a worker that died idle


def _cpu_used() -> int:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return int(used.ru_utime + used.ru_stime)


def _cpu_budget() -> float:
    """The hard CPU limit set by the jail: this worker's whole life (infinite outside it)."""
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    return float("inf") if hard == resource.RLIM_INFINITY else hard


def _run(model: LoadedModel, payload: bytearray, cpu_seconds: int) -> bytes:
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = min(_cpu_used() + cpu_seconds, _cpu_budget())  # never above the hard limit
    resource.setrlimit(resource.RLIMIT_CPU, (int(soft), hard))
    try:
        names, inputs = decode_run(memoryview(payload))
        results = model.run(names, inputs)
        return frame(RESULT, *encode_tensors(dict(zip(names, results, strict=True))))
    except Exception as exc:  # the model failed: name the kind only, its text may echo inputs
        return frame(FAILED, type(exc).__name__.encode())


_CPU_LIMIT_EXIT = 128 + signal.SIGXCPU


def _exit_on_cpu_limit() -> None:
    """End the process at SIGXCPU, which PID 1 would otherwise ignore."""
    woken, wake = os.pipe2(os.O_CLOEXEC)
    os.set_blocking(wake, False)
    signal.set_wakeup_fd(wake, warn_on_full_buffer=False)
    signal.signal(signal.SIGXCPU, lambda number, frame: None)

    def watch() -> None:
        while os.read(woken, 1) != bytes([signal.SIGXCPU]):
            pass
        os._exit(_CPU_LIMIT_EXIT)

    threading.Thread(target=watch, name="cpu-limit", daemon=True).start()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
