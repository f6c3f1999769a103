"""Bastion: a security layer for machine-learning models and their data.

Two faces: ``bastion serve``, a gateway that authenticates, authorizes, validates,
runs and audits every model call; and a toolkit (``bastion <command>``) to protect
models and data. See docs/ for a guided tour.
"""

__version__ = "0.1.0"
