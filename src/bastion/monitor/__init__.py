"""Monitoring: Prometheus metrics.

>>> from bastion.monitor import GatewayMetrics
>>> m = GatewayMetrics(audit_backlog=lambda: 0)
>>> m.observe(route="/v2/health/live", model="", status=200, decision="none", seconds=0.001)
>>> b"bastion_requests_total" in m.render()
True
"""

from bastion.monitor.metrics import CONTENT_TYPE, GatewayMetrics

__all__ = ["CONTENT_TYPE", "GatewayMetrics"]
