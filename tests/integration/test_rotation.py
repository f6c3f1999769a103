"""Key rotation at scale, and a rewrap killed half way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import sqlalchemy as sa

from bastion.settings import Settings
from bastion.storage import tables
from bastion.workspace import Workspace

OBJECTS = 10_000
PASSPHRASE = "rotation test passphrase"


def test_rotate_rewrap_retire_ten_thousand_objects_with_a_kill_in_the_middle(tmp_path):
    """10 000 objects survive a SIGKILLed rewrap, then all move to v2 and v1 is retired."""
    home = tmp_path / "ws"
    settings = Settings(home=home, passphrase=PASSPHRASE)
    ws = Workspace.create(settings, force=False)
    payloads = {f"obj-{i:05d}": f"payload {i}".encode() * 3 for i in range(OBJECTS)}
    ws.blobs.put_many("test", payloads)
    ws.keyring.rotate()

    def on_version(version: int) -> int:
        with ws.database.transaction() as db:
            query = sa.select(sa.func.count()).select_from(tables.blobs)
            return int(db.execute(query.where(tables.blobs.c.key_version == version)).scalar_one())

    rewrap = subprocess.Popen(
        [sys.executable, "-m", "bastion", "--home", str(home), "keys", "rewrap"],
        env=os.environ | {"BASTION_PASSPHRASE": PASSPHRASE},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while on_version(2) < 500 and time.monotonic() < deadline:
        time.sleep(0.005)
    rewrap.send_signal(signal.SIGKILL)
    rewrap.wait()
    moved = on_version(2)
    assert 0 < moved < OBJECTS + 1, "the kill landed before or after the rewrap"
    for name, payload in payloads.items():
        assert ws.blobs.get("test", name) == payload

    ws.blobs.rewrap()
    assert on_version(1) == 0
    ws.blobs.retire(1)
    for name, payload in payloads.items():
        assert ws.blobs.get("test", name) == payload
    ws.close()
