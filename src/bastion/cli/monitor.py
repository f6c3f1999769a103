"""`bastion monitor`: a live view of traffic, refusals and alerts, read from the audit log."""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from typing import Annotated

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from bastion.audit import AuditLog
from bastion.cli.state import state

console = Console()
_REFUSED = ("authn_login_fail", "authz_fail", "excess_rate_limit_exceeded", "input_validation_fail")


def monitor(
    ctx: typer.Context,
    window: Annotated[int, typer.Option(help="Seconds of traffic to summarise.", min=1)] = 60,
    refresh: Annotated[float, typer.Option(help="Seconds between updates.", min=0.2)] = 1.0,
    once: Annotated[bool, typer.Option("--once", help="Print one view and exit.")] = False,
) -> None:
    """Watch the gateway: requests by event, busiest principals, refusals and alerts.

    Works from any machine that can open the workspace (it reads the audit log), so it
    sees every gateway process that shares the database.
    """
    audit = state(ctx).workspace().audit
    if once:
        console.print(view(audit, window=window))
        return
    with Live(view(audit, window=window), console=console, refresh_per_second=4) as live:
        while True:
            time.sleep(refresh)
            live.update(view(audit, window=window))


def view(audit: AuditLog, *, window: int) -> Group:
    """One frame of the monitor."""
    now = time.time()
    recent = [entry.event for entry in audit.search(since=now - window, limit=100_000)]
    alerts = [entry.event for entry in audit.search(event="monitor_alert", limit=8)]
    requests = [e for e in recent if e.event != "monitor_alert"]
    events = Counter(e.event for e in requests)
    principals = Counter(e.principal for e in requests)
    summary = Table(
        "event", "count", title=f"last {window} s: {len(requests)} requests", title_justify="left"
    )
    for name, count in events.most_common():
        style = "red" if name in _REFUSED else ""
        summary.add_row(f"[{style}]{name}[/]" if style else name, str(count))
    busiest = Table(
        "principal", "requests", "refused", title="busiest principals", title_justify="left"
    )
    for principal, count in principals.most_common(5):
        refused = sum(1 for e in requests if e.principal == principal and e.event in _REFUSED)
        busiest.add_row(principal, str(count), str(refused))
    latest = Table("UTC", "alert", "detail", title="latest alerts", title_justify="left")
    for alert in alerts:
        latest.add_row(
            dt.datetime.fromtimestamp(alert.time, dt.UTC).strftime("%H:%M:%S"),
            alert.resource,
            alert.reason,
        )
    return Group(Panel(Group(summary, busiest), title="Bastion monitor"), latest)
