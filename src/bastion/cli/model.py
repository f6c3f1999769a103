"""`bastion model`: register and list models."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from bastion.cli import sanitizer, signing
from bastion.cli.policy import model_labels
from bastion.cli.state import acting_as, state
from bastion.errors import BastionError, InvalidInput
from bastion.policy.labels import UNREGISTERED
from bastion.registry import (
    ModelSignature,
    ModelVersion,
    OutputPolicy,
    UpstreamEndpoint,
)

app = typer.Typer(
    help="Register models (encrypted at rest), list and inspect them.", no_args_is_help=True
)
console = Console()

# Options that `register` and `register-upstream` share.
Version = Annotated[str | None, typer.Option(help="Version label; default: the next whole number.")]
Outputs = Annotated[
    list[str] | None,
    typer.Option(help="Only this output is returned to clients (repeat for more)."),
]
RolePolicies = Annotated[
    list[str] | None,
    typer.Option(
        "--role-policy",
        help="Other output limits for callers of one role, instead of the model's defaults: "
        "ROLE:SETTING[,SETTING…] with top-k=N, round=N and output=NAME (repeatable). "
        "Example: --role-policy partner:output=label --role-policy analyst:round=2. "
        "Repeat the option for more roles.",
    ),
]
RiskTierOption = Annotated[
    str, typer.Option("--risk-tier", help="For policies: unassessed, low, medium or high.")
]
ClassificationOption = Annotated[
    str,
    typer.Option(
        "--classification", help="For policies: public, internal, confidential or restricted."
    ),
]


@app.command("register")
def register(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            help="An ONNX model, or a scikit-learn estimator saved with skops, pickle or "
            "joblib (it must scan clean: `bastion scan`).",
            exists=True,
            dir_okay=False,
        ),
    ],
    name: Annotated[str, typer.Option(help="Model name used in /v2/models/{name}.")],
    version: Version = None,
    top_k: Annotated[
        int | None, typer.Option(help="Reveal only the k highest scores per row.", min=1)
    ] = None,
    round_digits: Annotated[
        int | None,
        typer.Option("--round", help="Round scores to this many decimals.", min=0, max=8),
    ] = None,
    output: Outputs = None,
    role_policy: RolePolicies = None,
    reference: Annotated[
        Path | None,
        typer.Option(
            help="A .npy sample of typical inputs (rows x features) to detect drift.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    clip: sanitizer.Clip = None,
    levels: sanitizer.Levels = None,
    median: sanitizer.Median = None,
    image: sanitizer.Image = None,
    bounds: sanitizer.Bounds = None,
    risk_tier: RiskTierOption = "unassessed",
    classification: ClassificationOption = "internal",
    allow_unsigned: Annotated[
        bool,
        typer.Option(
            "--allow-unsigned",
            help="Register without the folder's signed manifest.json (development only: such "
            "a version can never be promoted to production). By default the manifest must be "
            "signed by a trusted signer (`model sign`, `model trust`).",
        ),
    ] = False,
    robustness: Annotated[
        Path | None,
        typer.Option(
            help="robustness.json from `bastion robustness eval`, kept with the version.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    principal: Annotated[
        str | None,
        typer.Option(
            help="Client id of who registers: Cedar must allow it `register` on the model "
            "(the baseline allows role admin), and the attempt is audited."
        ),
    ] = None,
) -> None:
    """Check a signed ONNX model or estimator, encrypt it and record a new immutable version.

    The file's folder must hold a manifest.json signed by a trusted signer (`bastion model
    sign FOLDER`, `bastion model trust KEY.pub.json`); it is verified now and at every load.

    Example: `bastion model register models/digits/mlp.onnx --name digits --clip 0:1
    --levels 4 --robustness report/robustness.json --principal bcl_…`
    """
    policy = output_policy(top_k, round_digits, output, role_policy)
    squeeze = sanitizer.input_policy(clip, levels, median, image, bounds)
    labels = model_labels(risk_tier, classification)
    claim = None
    if robustness is not None:
        claim = signing.claim_from(robustness)
    sample = None
    if reference is not None:
        try:
            sample = np.load(reference, allow_pickle=False)  # never unpickle a user's file
        except ValueError:
            raise InvalidInput(f"{reference} is not a plain .npy array.") from None
    ws = state(ctx).workspace()

    def work() -> ModelVersion:
        return ws.registry.register(
            file,
            name=name,
            version=version,
            output_policy=policy,
            input_policy=squeeze,
            reference=sample,
            robustness=claim,
            labels=labels,
            manifest=None if allow_unsigned else signing.manifest_of(file),
        )

    if principal is None:
        registered = work()  # the operator's own act, as for every other workspace command
    else:
        # An unknown id is refused by the guard too, and audited.
        with acting_as(ws, principal) as asker:
            registered = ws.guard().run(
                work,
                principal=asker,
                action="register",
                resource=name,
                labels=labels,
                audited_as=name,
                reason=f"register {name} ({labels.risk_tier}, {labels.classification})",
                context={"ip": "127.0.0.1"},
            )
    console.print(
        f"[green]✓[/] Registered [bold]{registered.ref}[/] "
        f"(sha256 {registered.sha256[:16]}…, encrypted at rest)"
    )
    _signature_table(registered.signature)


@app.command("register-upstream")
def register_upstream(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="Model name clients use on the gateway.")],
    url: Annotated[str, typer.Option(help="The upstream V2 server, https://host:port.")],
    ca: Annotated[Path, typer.Option(help="CA certificate of the upstream (PEM).", exists=True)],
    cert: Annotated[
        Path, typer.Option(help="Bastion's client certificate for it (PEM).", exists=True)
    ],
    key: Annotated[Path, typer.Option(help="That certificate's private key (PEM).", exists=True)],
    upstream_model: Annotated[
        str | None, typer.Option(help="The model's name upstream; default: --name.")
    ] = None,
    version: Version = None,
    output: Outputs = None,
    role_policy: RolePolicies = None,
    risk_tier: RiskTierOption = "unassessed",
    classification: ClassificationOption = "internal",
) -> None:
    """Serve a model that runs on another V2 server (KServe, Triton, MLServer) through Bastion.

    Bastion reads the model's inputs and outputs from the upstream over mutual TLS, and from
    then on authenticates, authorizes, validates and audits every call before forwarding it.

    Example: `bastion model register-upstream --name fraud --url https://mlserver:8443
    --ca upstream-ca.pem --cert gateway.pem --key gateway.key`
    """
    endpoint = UpstreamEndpoint(
        url=url,
        model=upstream_model or name,
        ca=ca.resolve(),
        certificate=cert.resolve(),
        key=key.resolve(),
    )
    registered = (
        state(ctx)
        .workspace()
        .registry.register_upstream(
            endpoint,
            name=name,
            version=version,
            output_policy=output_policy(None, None, output, role_policy),
            labels=model_labels(risk_tier, classification),
        )
    )
    console.print(f"[green]✓[/] Registered [bold]{registered.ref}[/] → {url} (mutual TLS)")
    _signature_table(registered.signature)


@app.command("promote")
def promote(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The model.")],
    version: Annotated[str, typer.Argument(help="The version to put in production.")],
    principal: Annotated[str, typer.Option(help="Client id of who promotes (Cedar decides).")],
) -> None:
    """Make a version the production one: what calls without a version then reach.

    Cedar must allow the principal the action `promote` on the model (the baseline allows
    role `admin`), and the version must pass the checks: a manifest signed by a trusted
    signer that still verifies, an artifact that scans clean, and for a high-risk model a
    robustness report. The previous production version is archived. Every attempt is
    audited. Example: `bastion model promote fraud 3 --principal bcl_…`
    """
    ws = state(ctx).workspace()
    try:
        found: ModelVersion | BastionError = ws.registry.get(name, version)
    except BastionError as exc:  # NotFound, or a row that does not read back
        # Audited too, and decided first: policies see an unregistered model's labels, so a
        # principal that may not promote it learns nothing about which versions exist.
        found = exc

    def work() -> ModelVersion:
        if isinstance(found, BastionError):
            raise found
        return ws.registry.promote(found)

    model = found if isinstance(found, ModelVersion) else None
    # An unknown id is refused by the guard too, and audited.
    with acting_as(ws, principal) as asker:
        promoted = ws.guard().run(
            work,
            principal=asker,
            action="promote",
            resource=name,
            labels=model.labels if model else UNREGISTERED,
            audited_as=model.ref if model else f"{name}@{version}",
            reason=f"promote {model.ref} from {model.labels.stage}"
            if model
            else f"promote {name}@{version}",
            context={"ip": "127.0.0.1"},
        )
    console.print(f"[green]✓[/] {promoted.ref} is in production")


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """Show every registered model version."""
    table = Table("model", "version", "stage", "inputs", "outputs", "sha256", "registered")
    for m in state(ctx).workspace().registry.list():
        table.add_row(
            m.name,
            m.version,
            m.labels.stage,
            ", ".join(f"{t.name} {t.datatype}{list(t.shape)}" for t in m.signature.inputs),
            ", ".join(f"{t.name} {t.datatype}{list(t.shape)}" for t in m.signature.outputs),
            m.sha256[:12] + "…",
            dt.datetime.fromtimestamp(m.created_at, dt.UTC).strftime("%Y-%m-%d %H:%M"),
        )
    console.print(table)


@app.command("inspect")
def inspect(
    ctx: typer.Context,
    model: Annotated[
        str, typer.Argument(help="NAME or NAME@VERSION (default: the newest version).")
    ],
) -> None:
    """Show one version: signature, sanitizer, output policy and robustness claim."""
    name, _, version = model.partition("@")
    found = state(ctx).workspace().registry.get(name, version or None)
    console.print(f"[bold]{found.ref}[/]  {found.format}  sha256 {found.sha256}")
    _signature_table(found.signature)
    console.print(
        f"risk tier: {found.labels.risk_tier}, classification: {found.labels.classification}"
    )
    console.print(f"sanitizer: {_describe(found.input_policy.to_json())}")
    console.print(f"signed by: {found.signer or 'nobody (registered with --allow-unsigned)'}")
    console.print(f"output policy: {_describe(found.output_policy.to_json())}")
    _claim(found)


def _claim(found: ModelVersion) -> None:
    claim = found.robustness
    if claim is None:
        console.print("robustness: [yellow]not evaluated[/] (see `bastion robustness eval`)")
        return
    table = Table(
        "norm",
        "ε",
        "robust accuracy",
        title=f"robustness ({claim.dataset}, {claim.samples} inputs)",
    )
    table.add_row("none", "0", f"{claim.clean_accuracy:.1%}")
    for budget in claim.worst:
        table.add_row(budget.norm, f"{budget.epsilon:g}", f"{budget.robust_accuracy:.1%}")
    console.print(table)
    for line in claim.verdict:
        console.print(f"  {line}", highlight=False)


def output_policy(
    top_k: int | None, round_digits: int | None, outputs: list[str] | None, roles: list[str] | None
) -> OutputPolicy:
    """The output policy of ``register``'s options; ``roles`` in ``--role-policy`` syntax.

    Raises:
        InvalidInput: a ``--role-policy`` is malformed.
    """
    try:
        return OutputPolicy(
            top_k=top_k,
            round_digits=round_digits,
            outputs=tuple(outputs) if outputs else None,
            by_role=tuple(_role_policy(text) for text in roles or ()),
        )
    except ValueError as exc:
        raise InvalidInput(f"Output policy: {exc}.") from None


def _role_policy(text: str) -> tuple[str, OutputPolicy]:
    """``ROLE:top-k=N,round=N,output=NAME,…`` as (role, policy)."""
    role, _, settings = text.partition(":")
    limits: dict[str, int] = {}
    outputs: list[str] = []
    for setting in settings.split(","):
        key, _, value = (part.strip() for part in setting.partition("="))
        if key == "output" and value:
            outputs.append(value)
        elif key in ("top-k", "round") and value.isdigit() and key not in limits:
            limits[key] = int(value)
        else:
            raise ValueError(
                f"--role-policy {text!r}: write ROLE:SETTING[,SETTING…] with top-k=N and "
                "round=N at most once each, and output=NAME as often as needed"
            )
    policy = OutputPolicy(
        top_k=limits.get("top-k"), round_digits=limits.get("round"), outputs=tuple(outputs) or None
    )
    return role.strip(), policy


def _describe(policy: dict[str, object]) -> str:
    roles = policy.get("roles")
    chosen = {k: v for k, v in policy.items() if v is not None and k != "roles"}
    text = ", ".join(f"{k}={v}" for k, v in chosen.items()) or "none (pass-through)"
    if isinstance(roles, dict):
        text += "".join(f"; role {role}: {_describe(limits)}" for role, limits in roles.items())
    return text


def _signature_table(signature: ModelSignature) -> None:
    table = Table("tensor", "datatype", "shape")
    for spec in signature.inputs + signature.outputs:
        table.add_row(spec.name, spec.datatype, str(list(spec.shape)))
    console.print(table)


signing.add_commands(app)
