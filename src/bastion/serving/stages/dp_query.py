"""Answer a differentially private query on a registered dataset (after authorize, throttle).

The body is JSON: ``{"query": "mean(age, 0, 100)", "epsilon": 0.5}``. Every number is
range-checked first (a bad one is a 400 that costs nothing); then the engine checks the
column, charges the budget, and answers; a refused charge is a 403.
"""

from __future__ import annotations

import json

from anyio import to_thread

from bastion.errors import InvalidInput
from bastion.privacy.dp import DpEngine, Query
from bastion.serving.call import Call

_MAX_BODY = 4096


class AnswerQuery:
    """Parses the query, then asks the DP engine for the principal."""

    def __init__(self, *, engine: DpEngine) -> None:
        self._engine = engine

    async def __call__(self, call: Call) -> None:
        """Set ``call.reply``.

        Raises:
            InvalidInput: the body is not a query with an epsilon.
        """
        if call.principal is None:
            raise InvalidInput(detail="dp query reached without a principal")
        principal, dataset = call.principal.client_id, call.target.dataset
        query = _parse(await call.read_body())
        call.reply = await to_thread.run_sync(
            lambda: self._engine.ask(dataset, query, principal=principal)
        )


def _parse(body: bytes) -> Query:
    """The query of a body, every number range-checked before the engine can charge it."""
    if len(body) > _MAX_BODY:
        raise InvalidInput("A query body is at most 4096 bytes.")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # ValueError covers JSONDecodeError and an integer too long to read; deep nesting
        # is a RecursionError. Each is the client's malformed body, never a 500.
        raise InvalidInput('The body must be JSON: {"query": …, "epsilon": …}.') from None
    if not isinstance(document, dict) or set(document) != {"query", "epsilon"}:
        raise InvalidInput("The body has exactly two keys: query and epsilon.")
    spec, epsilon = document["query"], document["epsilon"]
    # json reads NaN, Infinity and 1e999 as floats and huge integers as ints; a bool is
    # no number. Query.parse range-checks what remains (ε in [1e-6, 10], bounds ±1e15).
    is_number = isinstance(epsilon, int | float) and not isinstance(epsilon, bool)
    if not isinstance(spec, str) or not is_number:
        raise InvalidInput("query is a string and epsilon a number.")
    return Query.parse(spec, epsilon=epsilon)
