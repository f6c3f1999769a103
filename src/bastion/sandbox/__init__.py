"""Model workers jailed by bubblewrap, fed over a Unix socket.

The gateway decrypts and verifies a model version, then hands it to a pool of worker
processes (``bastion.sandbox.worker``) each started in a :class:`Jail`: host ``nobody``,
alone in its PID namespace, no network, a read-only minimal filesystem without the
workspace, a private capped ``/tmp``, no new processes, limits on memory, CPU time and
open files, its standard error logged by the gateway. Requests and results cross a socket pair as
binary frames (:mod:`bastion.sandbox.frames`); a worker that crashes, overruns its time or
breaks the protocol is killed and replaced, and the gateway keeps serving.
"""

from bastion.sandbox.frames import FrameError, Tensors
from bastion.sandbox.jail import Jail, SandboxLimits
from bastion.sandbox.pool import WorkerPool
from bastion.sandbox.runner import SandboxRunner

__all__ = ["FrameError", "Jail", "SandboxLimits", "SandboxRunner", "Tensors", "WorkerPool"]
