"""`bastion policy`: validate Cedar policies, test them against cases, explain a decision."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, get_args

import typer
from rich.console import Console
from rich.table import Table

from bastion.cli.state import state
from bastion.errors import InvalidInput
from bastion.identity import Principal
from bastion.policy import AccessRequest, Action, CedarAuthorizer, ModelLabels
from bastion.policy.cases import load_cases, run_cases

app = typer.Typer(help="Check Cedar policies before they reach a gateway.", no_args_is_help=True)
console = Console()
Folder = Annotated[
    Path | None,
    typer.Option(help="Policy folder (*.cedar). Default: the workspace's policies/."),
]


def _authorizer(ctx: typer.Context, folder: Path | None) -> CedarAuthorizer:
    if folder is None:
        folder = state(ctx).settings().home.resolve() / "policies"
    return CedarAuthorizer.from_folder(folder)


@app.command("validate")
def validate(ctx: typer.Context, folder: Folder = None) -> None:
    """Parse the policies and check them against Bastion's schema."""
    authorizer = _authorizer(ctx, folder)
    console.print(
        f"[green]✓[/] {len(authorizer.policy_ids)} policies valid: "
        f"{', '.join(authorizer.policy_ids)}"
    )


@app.command("test")
def run_tests(
    ctx: typer.Context,
    cases: Annotated[Path, typer.Argument(help="A TOML file of [[case]] tables.", exists=True)],
    folder: Folder = None,
) -> None:
    """Run each case; exit non-zero if any decision differs from what it expects."""
    results = run_cases(_authorizer(ctx, folder), load_cases(cases))
    table = Table("case", "expected", "decided", "policies", "")
    for result in results:
        case, decision = result.case, result.decision
        table.add_row(
            case.name,
            "allow" if case.expect_allow else "deny",
            "allow" if decision.allowed else "deny",
            ", ".join(decision.policy_ids),
            "[green]pass[/]" if result.passed else "[red]FAIL[/]",
        )
    console.print(table)
    failed = sum(not result.passed for result in results)
    if failed:
        raise InvalidInput(f"{failed} of {len(results)} policy cases failed.")
    console.print(f"[green]✓[/] {len(results)} cases pass.")


@app.command("explain")
def explain(
    ctx: typer.Context,
    role: Annotated[str, typer.Option(help="The principal's role.")],
    action: Annotated[
        str,
        typer.Option(
            help="A Cedar action: infer, describe, register, promote, query_data, "
            "reidentify, read_metrics, read_audit, manage_principals, manage_policies."
        ),
    ],
    resource: Annotated[str, typer.Option(help="A model name, or 'gateway'.")] = "gateway",
    attr: Annotated[list[str] | None, typer.Option(help="Attribute KEY=VALUE; repeat.")] = None,
    ip: Annotated[str, typer.Option(help="Client address in the context.")] = "127.0.0.1",
    time: Annotated[int, typer.Option(help="Unix time in the context.")] = 0,
    risk_tier: Annotated[
        str, typer.Option(help="The model's risk tier: unassessed, low, medium or high.")
    ] = "unassessed",
    classification: Annotated[
        str, typer.Option(help="The model's data: public, internal, confidential or restricted.")
    ] = "internal",
    folder: Folder = None,
) -> None:
    """Show the decision for one request and the policies that made it."""
    attributes = dict(item.split("=", 1) for item in attr or [] if "=" in item)
    principal = Principal(client_id="bcl_explain", name="explain", role=role, attributes=attributes)
    known: dict[str, Action] = {name: name for name in get_args(Action)}
    if action not in known:
        raise InvalidInput(f"Unknown action {action!r}; use one of {', '.join(known)}.")
    labels = model_labels(risk_tier, classification)
    request = AccessRequest(principal, known[action], resource, {"ip": ip, "time": time}, labels)
    decision = _authorizer(ctx, folder).decide(request)
    verdict = "[green]ALLOW[/]" if decision.allowed else "[red]DENY[/]"
    reason = ", ".join(decision.policy_ids) or "no policy permits it (deny by default)"
    console.print(f"{verdict} — {reason}")
    for error in decision.errors:
        console.print(f"  [yellow]policy error:[/] {error}")


def model_labels(risk_tier: str, classification: str) -> ModelLabels:
    """Labels from command-line options, with a clear error for a typo."""
    try:
        return ModelLabels(risk_tier=risk_tier, classification=classification)  # type: ignore[arg-type]
    except ValueError as exc:
        raise InvalidInput(f"{exc}.") from None
