"""Encryption throughput and peak memory: Bastion's stream beside the alternatives.

Run: .venv/bin/python benchmarks/crypto.py [--size-mib 1024]

Each method runs in a fresh child process on the same generated file, so its peak
resident memory (ru_maxrss) is its own. Compared, in one run:

- Bastion stream encrypt / decrypt (envelope v1, 64 KiB segments), file to file
- Bastion encrypt_file: the same, plus fsync and an atomic rename (what the CLI does)
- raw AES-256-GCM over 64 KiB chunks (no framing, no key handling: the practical limit)
- Tink streaming AEAD, AES256_GCM_HKDF_1MB (pip tink)
- Fernet from `cryptography` (whole file in memory: how most scripts do it)
- Bastion and Tink again with the output sent to /dev/null, which takes the cost of
  writing the output (page allocation on this VM) out of the comparison

Every process imports bastion.crypto and cryptography.fernet before its clock starts, so
peak RSS figures share the same baseline (the Tink worker also loads Tink).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHUNK = 64 * 1024

WORKERS = {
    "bastion-encrypt": """
from bastion.crypto import StaticKeys, encrypt_stream
with open(SRC, "rb") as src, open(DST, "wb") as dst:
    encrypt_stream(src, dst, keys=StaticKeys(bytes(32)), associated_data=b"bench")
""",
    "bastion-decrypt": """
from bastion.crypto import StaticKeys, decrypt_stream
with open(SRC, "rb") as src, open(DST, "wb") as dst:
    decrypt_stream(src, dst, keys=StaticKeys(bytes(32)), associated_data=b"bench")
""",
    "bastion-encrypt-file": """
from bastion.crypto import StaticKeys, encrypt_file
encrypt_file(SRC, DST, keys=StaticKeys(bytes(32)), associated_data=b"bench")
""",
    "raw-aes-gcm-64k": """
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
aead = AESGCM(bytes(32))
with open(SRC, "rb") as src, open(DST, "wb") as dst:
    i = 0
    while chunk := src.read(65536):
        dst.write(aead.encrypt(i.to_bytes(12, "big"), chunk, None))
        i += 1
""",
    "tink-encrypt": """
import io, tink
from tink import streaming_aead
streaming_aead.register()
handle = tink.new_keyset_handle(streaming_aead.streaming_aead_key_templates.AES256_GCM_HKDF_1MB)
primitive = handle.primitive(streaming_aead.StreamingAead)
with open(SRC, "rb") as src, open(DST, "wb") as dst:
    with primitive.new_encrypting_stream(dst, b"bench") as enc:
        while chunk := src.read(1 << 20):
            enc.write(chunk)
""",
    "bastion-encrypt-null": """
import os
from bastion.crypto import StaticKeys, encrypt_stream
with open(SRC, "rb") as src, open(os.devnull, "wb") as dst:
    encrypt_stream(src, dst, keys=StaticKeys(bytes(32)), associated_data=b"bench")
""",
    "tink-encrypt-null": """
import os, tink
from tink import streaming_aead
streaming_aead.register()
handle = tink.new_keyset_handle(streaming_aead.streaming_aead_key_templates.AES256_GCM_HKDF_1MB)
primitive = handle.primitive(streaming_aead.StreamingAead)
with open(SRC, "rb") as src, open(os.devnull, "wb") as dst:
    with primitive.new_encrypting_stream(dst, b"bench") as enc:
        while chunk := src.read(1 << 20):
            enc.write(chunk)
""",
    "fernet-encrypt": """
from cryptography.fernet import Fernet
f = Fernet(Fernet.generate_key())
with open(SRC, "rb") as src:
    token = f.encrypt(src.read())
with open(DST, "wb") as dst:
    dst.write(token)
""",
}


def run(name: str, source: Path, target: Path) -> tuple[float, float]:
    """Seconds of the work itself (imports excluded) and peak RSS (MiB), in a fresh process."""
    work = WORKERS[name]
    code = (
        "import time\nfrom pathlib import Path\n"
        f"SRC, DST = Path({str(source)!r}), Path({str(target)!r})\n"
        "import bastion.crypto, cryptography.fernet\n"
        "START = time.perf_counter()\n" + work + "\nprint(time.perf_counter() - START)\n"
    )
    target.unlink(missing_ok=True)
    os.sync()  # start each method with no dirty pages of the one before
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    seconds = float(child.stdout.read())
    _, status, usage = os.wait4(child.pid, 0)
    if status != 0:
        raise SystemExit(f"{name} failed")
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs per method")
    args = parser.parse_args()
    size = args.size_mib * 1024 * 1024
    # tmpfs when there is room, so disk writeback does not drown the cipher being measured
    room = Path("/dev/shm")
    scratch_dir = room if room.is_dir() and shutil.disk_usage(room).free > 3.2 * size else None
    with tempfile.TemporaryDirectory(dir=scratch_dir) as folder:
        plain = Path(folder) / "plain.bin"
        with plain.open("wb") as out:
            for _ in range(size // CHUNK):
                out.write(os.urandom(CHUNK))
        sealed, scratch = Path(folder) / "sealed.bst", Path(folder) / "scratch.bin"
        rows = []
        run("raw-aes-gcm-64k", plain, scratch)  # warm-up: fault in the tmpfs pages once
        for name in WORKERS:
            source = sealed if name == "bastion-decrypt" else plain
            target = sealed if name == "bastion-encrypt" else scratch
            # Best of N: the first touch of fresh memory pages on a VM is slow and noisy.
            runs = [run(name, source, target) for _ in range(args.repeat)]
            seconds, peak = min(r[0] for r in runs), max(r[1] for r in runs)
            rows.append((name, size / seconds / 1e9, peak))
        # Peak memory must not grow with the input: encrypt a quarter of the file too.
        quarter = Path(folder) / "quarter.bin"
        with plain.open("rb") as src, quarter.open("wb") as dst:
            for _ in range(size // 4 // CHUNK):  # in chunks: a big parent inflates children's RSS
                dst.write(src.read(CHUNK))
        _, quarter_peak = run("bastion-encrypt", quarter, scratch)
    print(
        f"{args.size_mib} MiB file in {scratch_dir or 'a temporary folder on disk'}, "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"{'method':<21} {'GB/s':>7} {'peak RSS MiB':>13}")
    for name, rate, peak in rows:
        print(f"{name:<21} {rate:7.2f} {peak:13.0f}")
    rate = {name: r for name, r, _ in rows}
    print(f"\nbastion encrypt vs tink:   {rate['bastion-encrypt'] / rate['tink-encrypt']:.1f}x")
    print(f"bastion encrypt vs fernet: {rate['bastion-encrypt'] / rate['fernet-encrypt']:.1f}x")
    print(f"bastion encrypt vs raw:    {rate['bastion-encrypt'] / rate['raw-aes-gcm-64k']:.2f}x")
    null_ratio = rate["bastion-encrypt-null"] / rate["tink-encrypt-null"]
    print(f"bastion vs tink, output discarded (cipher and framing only): {null_ratio:.1f}x")
    full_peak = {name: p for name, _, p in rows}["bastion-encrypt"]
    print(
        f"bastion encrypt peak RSS:  {quarter_peak:.0f} MiB for {args.size_mib // 4} MiB, "
        f"{full_peak:.0f} MiB for {args.size_mib} MiB"
    )


if __name__ == "__main__":
    main()
