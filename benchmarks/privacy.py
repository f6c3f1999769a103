"""Privacy toolkit speed and quality: Bastion beside Presidio and anonypyx, in one run.

Run: .venv/bin/pip install -e '.[bench]' && .venv/bin/python benchmarks/privacy.py

1. PII scan of the generated corpus (4 000 sentences, seed 7, `bastion pii evaluate`'s):
   throughput in MB/s and per-entity precision, recall and F1 for Bastion's scanner and
   for Presidio's pattern recognizers (email, phone, card, IBAN, US SSN, IP, MAC, URL,
   date), called directly as Presidio runs them offline: its AnalyzerEngine needs a spaCy
   model, which cannot be downloaded here, so PERSON is Bastion's alone. Presidio's dates
   (DATE_TIME) are scored as dates of birth, the entity the corpus labels; its Italian fiscal
   code, Spanish NIF/NIE and UK NHS recognizers count as NATIONAL_ID (it has none for the
   Dutch BSN the corpus also holds).
2. Mondrian k = 10 on the synthetic Adult table (30 000 rows, 8 quasi-identifiers, no
   hierarchies: categories generalize to the set of values a class holds, as anonypyx
   does): seconds for the whole release (partition and generalize) and NCP, computed by
   one function from each tool's equivalence classes. Then Bastion alone on 1 000 000 rows.
3. DP-SGD on digits (1 347 training images, MLP 64-64-10, expected batch 128, SGD with
   momentum, learning rate 1, clipping norm 1): seconds per epoch for non-private training
   (the same model, shuffled batches of 128), Bastion's DP-SGD and Opacus's PrivacyEngine
   (Poisson sampling, RDP accountant), at ε = 3; then test accuracy of both at ε = 1, 3, 8
   (20 epochs, δ = 1 / (10 n)).
4. Masking a generated CSV of --mask-gb GB (customer rows: id, e-mail, card, SSN, birth
   date, postcode, age, a free-text note) by a policy with pseudonym, partial, FPE,
   generalization and a scanned note column, in a child process: seconds, MB/s and peak RSS,
   beside the same for a file a tenth of the size (flat memory: the two peaks match).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv
import torch
from anonypyx import Anonymiser
from opacus import PrivacyEngine
from presidio_analyzer import EntityRecognizer
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    DateRecognizer,
    EmailRecognizer,
    EsNieRecognizer,
    EsNifRecognizer,
    IbanRecognizer,
    IpRecognizer,
    ItFiscalCodeRecognizer,
    MacAddressRecognizer,
    NhsRecognizer,
    PhoneRecognizer,
    UrlRecognizer,
    UsSsnRecognizer,
)

from bastion.privacy import Entity, Finding, PiiScanner
from bastion.privacy.anonymity import (
    QUASI_IDENTIFIERS,
    Columns,
    Mondrian,
    Requirements,
    synthetic_adult,
)
from bastion.privacy.corpus import evaluate, generate
from bastion.privacy.dp.sgd import DpSgdPlan, train_private
from bastion.robustness.data import load_dataset
from bastion.robustness.networks import Architecture

PRESIDIO_ENTITIES = {
    "EMAIL_ADDRESS": Entity.EMAIL,
    "PHONE_NUMBER": Entity.PHONE,
    "CREDIT_CARD": Entity.CREDIT_CARD,
    "IBAN_CODE": Entity.IBAN,
    "US_SSN": Entity.US_SSN,
    "IP_ADDRESS": Entity.IP_ADDRESS,
    "MAC_ADDRESS": Entity.MAC_ADDRESS,
    "URL": Entity.URL,
    "DATE_TIME": Entity.DATE_OF_BIRTH,
    "IT_FISCAL_CODE": Entity.NATIONAL_ID,
    "ES_NIF": Entity.NATIONAL_ID,
    "ES_NIE": Entity.NATIONAL_ID,
    "UK_NHS": Entity.NATIONAL_ID,
}


def presidio_scanner():
    recognizers = [
        EmailRecognizer(),
        PhoneRecognizer(),
        CreditCardRecognizer(),
        IbanRecognizer(),
        UsSsnRecognizer(),
        IpRecognizer(),
        MacAddressRecognizer(),
        UrlRecognizer(),
        DateRecognizer(),
        ItFiscalCodeRecognizer(),
        EsNifRecognizer(),
        EsNieRecognizer(),
        NhsRecognizer(),
    ]

    def scan(text):
        results = []
        for recognizer in recognizers:
            results += recognizer.analyze(text, recognizer.supported_entities, None)
        results = EntityRecognizer.remove_duplicates(results)
        return [
            Finding(r.start, r.end, PRESIDIO_ENTITIES[r.entity_type], r.score)
            for r in results
            if r.entity_type in PRESIDIO_ENTITIES and r.score > 0
        ]

    return scan


def pii(sentences: int) -> None:
    # Presidio's URL recognizer fetches the public-suffix list on first use; offline, that
    # fails (and falls back to a snapshot) with a traceback per URL tried. Keep them quiet.
    logging.getLogger("tldextract").setLevel(logging.CRITICAL)
    corpus = generate(sentences, seed=7)
    megabytes = sum(len(item.text.encode()) for item in corpus) / 1e6
    tools = {"Bastion": PiiScanner().scan, "Presidio": presidio_scanner()}
    print(f"\n1. PII scan: {len(corpus)} sentences, {megabytes:.2f} MB")
    rates, scores = {}, {}
    for name, scan in tools.items():
        scan(corpus[0].text)  # warm up (compiles patterns)
        start = time.perf_counter()
        for item in corpus:
            scan(item.text)
        seconds = time.perf_counter() - start
        rates[name] = megabytes / seconds
        scores[name] = evaluate(scan, corpus)
        print(f"   {name:9s} {seconds:7.2f} s  {rates[name]:7.3f} MB/s")
    print(f"   throughput ratio Bastion / Presidio: {rates['Bastion'] / rates['Presidio']:.1f}x")
    print(f"   {'entity':14s} {'Bastion P / R / F1':>22s}   {'Presidio P / R / F1':>22s}")
    for entity in Entity:
        row = []
        for name in tools:
            s = scores[name][entity]
            gold = s.true_positives + s.false_negatives
            if name == "Presidio" and entity is Entity.PERSON:
                row.append(f"{'n/a (needs spaCy)':>22s}")
            else:
                row.append(f"{s.precision:6.3f} {s.recall:6.3f} {s.f1:6.3f}".rjust(22))
        print(f"   {entity.value:14s} {row[0]}   {row[1]}   (gold {gold})")


def ncp(table: pa.Table, classes: list[np.ndarray]) -> float:
    """Normalized certainty penalty from equivalence classes (row index arrays).

    Numbers: (max - min) / (column max - min); categories: (values held - 1) / (column
    values - 1). Averaged over quasi-identifiers, weighted by class size.
    """
    total = 0.0
    for name in QUASI_IDENTIFIERS:
        column = table[name].to_numpy(zero_copy_only=False)
        numeric = column.dtype.kind in "iuf"
        whole = (column.max() - column.min()) if numeric else len(set(column)) - 1
        for rows in classes:
            values = column[rows]
            span = (values.max() - values.min()) if numeric else len(set(values)) - 1
            total += len(rows) * (span / whole if whole else 0.0)
    return total / (len(QUASI_IDENTIFIERS) * table.num_rows)


def mondrian(rows: int, big: int, repeats: int) -> None:
    table = synthetic_adult(rows, seed=1)
    columns = Columns(QUASI_IDENTIFIERS, sensitive="income")
    print(f"\n2. Mondrian, k = 10, {rows:,} rows, {len(QUASI_IDENTIFIERS)} quasi-identifiers")
    times, model = [], None
    for _ in range(repeats):
        model = Mondrian(requirements=Requirements(k=10), columns=columns, random_state=0)
        start = time.perf_counter()
        model.fit_transform(table)
        times.append(time.perf_counter() - start)
    bastion_seconds = statistics.median(times)
    bastion_ncp = ncp(table, model.classes_)

    frame = table.to_pandas()
    for name in QUASI_IDENTIFIERS:
        if frame[name].dtype.kind not in "iuf":
            frame[name] = frame[name].astype("category")
    anonymiser = Anonymiser(
        frame,
        feature_columns=list(QUASI_IDENTIFIERS),
        sensitive_column="income",
        k=10,
        generalisation_strategy="human-readable",
    )
    start = time.perf_counter()
    partitions = anonymiser.algorithm.partition(anonymiser.parameters)
    generalisation = anonymiser.generalisation_strategy_type.create_for_data(
        frame, list(QUASI_IDENTIFIERS)
    )
    generalisation.generalise(frame, partitions)
    peer_seconds = time.perf_counter() - start
    peer_ncp = ncp(table, [np.asarray(p) for p in partitions])
    classes = model.report_.classes
    print(f"   Bastion   {bastion_seconds:8.3f} s  NCP {bastion_ncp:.4f}  ({classes} classes)")
    print(f"   anonypyx  {peer_seconds:8.3f} s  NCP {peer_ncp:.4f}  ({len(partitions)} classes)")
    print(
        f"   speed ratio: {peer_seconds / bastion_seconds:.0f}x; "
        f"NCP Bastion - anonypyx: {bastion_ncp - peer_ncp:+.4f}"
    )

    large = synthetic_adult(big, seed=2)
    start = time.perf_counter()
    model = Mondrian(requirements=Requirements(k=10), columns=columns, random_state=0)
    model.fit_transform(large)
    seconds = time.perf_counter() - start
    print(f"   Bastion alone, {big:,} rows: {seconds:.2f} s, NCP {model.report_.ncp:.4f}")


def dp_sgd(epochs: int) -> None:
    data = load_dataset("digits")
    n = len(data.x_train)
    delta = 1 / (10 * n)
    print(f"\n3. DP-SGD on digits, {n} training images, batch 128")

    def fresh():
        torch.manual_seed(0)
        return Architecture(data.features, (64,), data.classes).build()

    def accuracy(model):
        model.eval()
        return float((model(data.x_test).argmax(1) == data.y_test).float().mean())

    def plain(model, rounds):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(data.x_train, data.y_train), batch_size=128, shuffle=True
        )
        for _ in range(rounds):
            for xb, yb in loader:
                optimizer.zero_grad()
                torch.nn.functional.cross_entropy(model(xb), yb).backward()
                optimizer.step()

    def opacus(model, eps, rounds):
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0, momentum=0.9)
        loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(data.x_train, data.y_train), batch_size=128
        )
        start = time.perf_counter()  # the noise search is part of the work, as it is for ours
        engine = PrivacyEngine(accountant="rdp")
        model, optimizer, loader = engine.make_private_with_epsilon(
            module=model,
            optimizer=optimizer,
            data_loader=loader,
            target_epsilon=eps,
            target_delta=delta,
            epochs=rounds,
            max_grad_norm=1.0,
            poisson_sampling=True,
        )
        for _ in range(rounds):
            for xb, yb in loader:
                if len(xb) == 0:
                    continue
                optimizer.zero_grad()
                torch.nn.functional.cross_entropy(model(xb), yb).backward()
                optimizer.step()
        return model, (time.perf_counter() - start) / rounds, engine.get_epsilon(delta)

    def ours(model, eps, rounds):
        plan = DpSgdPlan(epsilon=eps, epochs=rounds, batch_size=128, learning_rate=1.0)
        generator = torch.Generator().manual_seed(0)
        start = time.perf_counter()
        claim = train_private(model, data.x_train, data.y_train, plan=plan, generator=generator)
        return model, (time.perf_counter() - start) / rounds, claim.epsilon

    model = fresh()
    start = time.perf_counter()
    plain(model, epochs)
    plain_epoch = (time.perf_counter() - start) / epochs
    print(f"   non-private   {plain_epoch:.4f} s/epoch  accuracy {accuracy(model):.3f}")
    _, ours_epoch, _ = ours(fresh(), 3.0, epochs)
    _, opacus_epoch, _ = opacus(fresh(), 3.0, epochs)
    print(
        f"   Bastion DP    {ours_epoch:.4f} s/epoch  ({ours_epoch / plain_epoch:.2f}x non-private)"
    )
    ratio = opacus_epoch / plain_epoch
    print(f"   Opacus        {opacus_epoch:.4f} s/epoch  ({ratio:.2f}x non-private)")
    print("   accuracy at   Bastion    Opacus   (ε reached: Bastion / Opacus)")
    for eps in (1.0, 3.0, 8.0):
        mine, _, mine_eps = ours(fresh(), eps, epochs)
        theirs, _, their_eps = opacus(fresh(), eps, epochs)
        print(
            f"   ε = {eps:<4g}     {accuracy(mine):7.3f}   {accuracy(theirs):7.3f}"
            f"   ({mine_eps:.3f} / {their_eps:.3f})"
        )


MASK_POLICY = """
dataset = "customers"
[columns]
id = "keep"
email = "pseudonym"
card = { operator = "partial", keep_last = 4 }
ssn = "fpe"
birth_date = { operator = "generalize", to = "year" }
zip = { operator = "generalize", to = "prefix:3" }
age = { operator = "generalize", to = "range:10" }
note = "scan"
"""


def write_customers(path: Path, gigabytes: float) -> None:
    """A CSV of about ``gigabytes`` GB, written batch by batch (never whole in memory)."""
    rng = np.random.default_rng(0)
    rows, written = 200_000, 0
    with pa.csv.CSVWriter(str(path), _customers(rng, 0, 10).schema) as out:
        start = 0
        while written < gigabytes * 1e9:
            batch = _customers(rng, start, rows)
            out.write_batch(batch)
            start += rows
            written = path.stat().st_size


def _customers(rng, start, rows):
    people = rng.integers(0, 50_000, rows)  # repeated customers, as real exports have
    notes = np.array(
        ["called about the invoice", "prefers e-mail", "", "call +44 20 7946 0958 after six"]
    )
    return pa.record_batch(
        {
            "id": np.arange(start, start + rows),
            "email": [f"user{p}@example.com" for p in people],
            "card": [f"4111 1111 {p % 10000:04d} {p // 10000:04d}" for p in people],
            "ssn": [f"5{p % 100:02d}-{p % 89 + 10:02d}-{p % 9000 + 1000:04d}" for p in people],
            "birth_date": [f"19{50 + p % 50}-{p % 12 + 1:02d}-{p % 28 + 1:02d}" for p in people],
            "zip": [f"{p % 90000 + 10000}" for p in people],
            "age": (people % 70 + 18).astype(str),
            "note": notes[rng.integers(0, len(notes), rows)],
        }
    )


def masking(gigabytes: float) -> None:
    print(f"\n4. Masking a CSV of {gigabytes:g} GB and one of {gigabytes / 10:g} GB")
    script = (
        "import resource, sys, time\n"
        "from pathlib import Path\n"
        "from bastion.privacy import MaskKeys, MaskPolicy, mask_file\n"
        "keys = MaskKeys(pseudonym_key=lambda: bytes(range(32)), fpe_key=lambda: bytes(32))\n"
        "policy = MaskPolicy.load(Path(sys.argv[3]), keys=keys)\n"
        "start = time.perf_counter()\n"
        "summary = mask_file(Path(sys.argv[1]), Path(sys.argv[2]), policy=policy)\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "print(f'{time.perf_counter() - start:.1f} {peak:.0f} {summary.rows}')\n"
    )
    with tempfile.TemporaryDirectory(dir="/tmp") as folder:
        base = Path(folder)
        (base / "policy.toml").write_text(MASK_POLICY)
        for size in (gigabytes / 10, gigabytes):
            source, target = base / f"in-{size:g}.csv", base / f"out-{size:g}.csv"
            write_customers(source, size)
            done = subprocess.run(
                [sys.executable, "-c", script, str(source), str(target), str(base / "policy.toml")],
                capture_output=True,
                text=True,
                check=True,
            )
            seconds, peak, rows = done.stdout.split()
            megabytes = source.stat().st_size / 1e6
            print(
                f"   {megabytes:8.0f} MB, {int(rows):>11,} rows: {float(seconds):7.1f} s "
                f"({megabytes / float(seconds):5.1f} MB/s), peak RSS {float(peak):6.0f} MiB"
            )
            source.unlink()
            target.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=4000)
    parser.add_argument("--rows", type=int, default=30_000)
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--mask-gb", type=float, default=2.0)
    parser.add_argument("--only", choices=["pii", "mondrian", "dp-sgd", "mask"])
    args = parser.parse_args()
    if args.only in (None, "pii"):
        pii(args.sentences)
    if args.only in (None, "mondrian"):
        mondrian(args.rows, args.big, args.repeats)
    if args.only in (None, "dp-sgd"):
        dp_sgd(args.epochs)
    if args.only in (None, "mask"):
        masking(args.mask_gb)


if __name__ == "__main__":
    main()
