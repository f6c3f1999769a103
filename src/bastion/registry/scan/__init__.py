"""The unsafe-content scanner: refuse any artifact that would import something unexpected.

>>> import pickle
>>> from bastion.registry.scan import scan_bytes
>>> scan_bytes(pickle.dumps({"weights": [1.0, 2.0]}), name="ok.pkl").is_safe
True
>>> class Evil:
...     def __reduce__(self):
...         import os
...         return (os.system, ("echo pwned",))
>>> report = scan_bytes(pickle.dumps(Evil()), name="evil.pkl")
>>> report.is_safe, report.findings[0].kind
(False, 'unsafe_global')
"""

from bastion.registry.scan.allowlist import SAFE, AllowList
from bastion.registry.scan.loader import load_pickle
from bastion.registry.scan.pickles import Global, MalformedPickle, trace_pickle
from bastion.registry.scan.scanner import Finding, ScanReport, scan_bytes, scan_path

__all__ = [
    "SAFE",
    "AllowList",
    "Finding",
    "Global",
    "MalformedPickle",
    "ScanReport",
    "load_pickle",
    "scan_bytes",
    "scan_path",
    "trace_pickle",
]
