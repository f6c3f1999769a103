"""Stage 5: run the model on the validated inputs."""

from __future__ import annotations

from bastion.errors import InvalidInput
from bastion.serving.call import Call
from bastion.serving.runner import Runner
from bastion.serving.stages.validate import allowed_outputs


class Infer:
    """Runs the model, computing only the outputs that will be returned."""

    def __init__(self, *, runner: Runner) -> None:
        self._runner = runner

    async def __call__(self, call: Call) -> None:
        """Set ``call.outputs``.

        Raises:
            BackendError: the model failed to run.
        """
        if call.model is None or call.request is None:
            raise InvalidInput("infer reached without a validated request")  # fail closed
        requested = call.request.outputs
        if requested:
            names = tuple(output.name for output in requested)
        else:
            names = allowed_outputs(call.model, call.role)
        call.outputs = await self._runner.run(call.model, call.inputs, names)
