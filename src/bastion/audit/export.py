"""Audit entries in the formats SIEMs read: RFC 5424 syslog and ArcSight CEF."""

from __future__ import annotations

import datetime as dt

from bastion.audit.entry import AuditEntry

_SEVERITY_BY_STATUS = ((500, 3), (400, 4), (0, 6))  # error, warning, informational


def to_syslog(entry: AuditEntry, *, hostname: str = "-") -> str:
    """One RFC 5424 message (facility local0 + severity) with a structured-data element."""
    event = entry.event
    severity = next(level for floor, level in _SEVERITY_BY_STATUS if event.status >= floor)
    priority = 16 * 8 + severity  # local0
    timestamp = dt.datetime.fromtimestamp(event.time, dt.UTC).isoformat(timespec="microseconds")
    params = " ".join(
        f'{key}="{_sd_escape(str(value))}"'
        for key, value in (
            ("seq", entry.seq),
            ("principal", event.principal),
            ("source", event.source),
            ("action", event.action),
            ("resource", event.resource),
            ("decision", event.decision),
            ("status", event.status),
            ("policies", ",".join(event.policy_ids)),
            ("leaf", entry.leaf_hash.hex()),
        )
    )
    return (
        f"<{priority}>1 {timestamp.replace('+00:00', 'Z')} {hostname} bastion - {event.event} "
        f"[audit@32473 {params}] {event.event} {event.status}"
    )


def to_cef(entry: AuditEntry) -> str:
    """One ArcSight Common Event Format line."""
    event = entry.event
    severity = 7 if event.status >= 500 else (5 if event.status >= 400 else 1)  # noqa: PLR2004
    extension = " ".join(
        f"{key}={_cef_escape(str(value))}"
        for key, value in (
            ("rt", int(event.time * 1000)),
            ("suser", event.principal),
            ("src", event.source),
            ("act", event.decision),
            ("request", event.route),
            ("cs1Label", "resource"),
            ("cs1", event.resource),
            ("cs2Label", "policies"),
            ("cs2", ",".join(event.policy_ids)),
            ("cn1Label", "seq"),
            ("cn1", entry.seq),
            ("outcome", event.status),
        )
    )
    return f"CEF:0|Bastion|Bastion|1|{event.event}|{event.event}|{severity}|{extension}"


def _sd_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _cef_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("=", "\\=").replace("\n", " ")
