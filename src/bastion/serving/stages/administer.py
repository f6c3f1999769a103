"""The last stage of an admin route: run the operation Cedar just allowed."""

from __future__ import annotations

from anyio import to_thread

from bastion.errors import BastionError
from bastion.serving.call import Call


class Administer:
    """Runs ``call.operation`` (in a worker thread: it touches the database or files)."""

    async def __call__(self, call: Call) -> None:
        """Set ``call.admin``.

        Raises:
            BastionError: whatever the operation refuses (bad input, not found, conflict).
        """
        if call.operation is None:
            raise BastionError(detail="admin route without an operation")  # fail closed
        body = await call.read_body()
        call.admin = await to_thread.run_sync(call.operation.run, body)
