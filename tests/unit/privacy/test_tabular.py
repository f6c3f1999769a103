"""Masking tables: CSV, JSON lines and Parquet, streamed in batches."""

import json
import os

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from bastion.errors import Conflict, InvalidInput
from bastion.privacy import MaskKeys, MaskPolicy, mask_file, tabular

KEYS = MaskKeys(pseudonym_key=lambda: bytes(range(32)), fpe_key=lambda: bytes(32))
POLICY = MaskPolicy.from_document(
    {
        "columns": {
            "id": "keep",
            "email": "pseudonym",
            "ssn": "fpe",
            "zip": {"operator": "generalize", "to": "prefix:3"},
            "age": {"operator": "generalize", "to": "range:10"},
            "phone": "drop",
        }
    },
    keys=KEYS,
)
ROWS = [
    {
        "id": "1",
        "email": "ann@example.com",
        "ssn": "536-22-1234",
        "zip": "02134",
        "age": "37",
        "phone": "+44 20 7946 0958",
        "notes": "call ann@example.com",
    },
    {
        "id": "2",
        "email": "bob@example.com",
        "ssn": "536-22-9999",
        "zip": "94107",
        "age": "x",
        "phone": "555",
        "notes": None,
    },
]


def write_csv(path, rows):
    header = list(rows[0])
    lines = [",".join(header)]
    lines += [",".join("" if r[h] is None else r[h] for h in header) for r in rows]
    path.write_text("\n".join(lines) + "\n")


def test_csv_is_masked_column_by_column(tmp_path):
    """Each column follows its plan; text stays text ("02134"); the summary counts it all."""
    write_csv(tmp_path / "in.csv", ROWS)
    summary = mask_file(tmp_path / "in.csv", tmp_path / "out.csv", policy=POLICY)
    as_text = dict.fromkeys(["id", "email", "ssn", "zip", "age", "notes"], pa.string())
    options = pacsv.ConvertOptions(column_types=as_text)
    out = pacsv.read_csv(tmp_path / "out.csv", convert_options=options).to_pylist()
    assert "phone" not in out[0]
    assert out[0]["id"] == "1" and out[0]["zip"] == "021**" and out[0]["age"] == "30-39"
    assert out[0]["email"].startswith("email_") and out[0]["email"] != out[1]["email"]
    assert out[0]["ssn"][3] == "-" and out[0]["ssn"] != "536-22-1234"
    assert out[0]["notes"] == "call <EMAIL>"
    assert out[1]["age"] == ""  # suppressed: null, which CSV writes as an empty field
    columns = {c.name: c for c in summary.columns}
    assert summary.rows == 2
    assert columns["age"].suppressed == 1 and columns["email"].changed == 2
    assert columns["notes"].findings == {"EMAIL": 1} and columns["notes"].plan == "scan"


def test_jsonl_and_parquet_give_the_same_masks(tmp_path):
    """The three formats agree value for value; nulls stay null; pseudonyms match across files."""
    write_csv(tmp_path / "in.csv", ROWS)
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "in.parquet")
    for suffix in ("csv", "jsonl", "parquet"):
        mask_file(tmp_path / f"in.{suffix}", tmp_path / f"out.{suffix}", policy=POLICY)
    from_jsonl = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    from_parquet = pq.read_table(tmp_path / "out.parquet").to_pylist()
    assert from_jsonl == from_parquet
    assert from_jsonl[1]["notes"] is None
    csv_text = (tmp_path / "out.csv").read_text()
    assert from_jsonl[0]["email"] in csv_text and from_jsonl[0]["ssn"] in csv_text


def test_many_batches_stream_and_stay_consistent(tmp_path, monkeypatch):
    """A file read in many small blocks masks equal values equally in every batch."""
    monkeypatch.setattr(tabular, "_BLOCK_BYTES", 4096)
    monkeypatch.setattr(tabular, "_BATCH_ROWS", 100)
    rows = [dict(ROWS[0], id=str(i)) for i in range(3000)]
    write_csv(tmp_path / "in.csv", rows)
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    progress = []
    summary = mask_file(
        tmp_path / "in.csv",
        tmp_path / "out.csv",
        policy=POLICY,
        on_progress=lambda done, total: progress.append((done, total)),
    )
    assert summary.rows == 3000 and len(progress) > 10
    assert progress[-1][0] == progress[-1][1] == (tmp_path / "in.csv").stat().st_size
    emails = {line.split(",")[1] for line in (tmp_path / "out.csv").read_text().splitlines()[1:]}
    assert len(emails) == 1
    assert mask_file(tmp_path / "in.jsonl", tmp_path / "out.jsonl", policy=POLICY).rows == 3000


def test_bad_files_are_refused_without_their_contents(tmp_path):
    """Malformed rows, non-object JSON lines and unknown suffixes are clear 4xx-style errors."""
    (tmp_path / "bad.csv").write_text("a,b\n1,2\nann@example.com,3,4\n")
    with pytest.raises(InvalidInput) as caught:
        mask_file(tmp_path / "bad.csv", tmp_path / "out.csv", policy=POLICY)
    assert "ann@example.com" not in str(caught.value)
    (tmp_path / "bad.jsonl").write_text('["ann@example.com"]\n')
    with pytest.raises(InvalidInput, match="object"):
        mask_file(tmp_path / "bad.jsonl", tmp_path / "out.jsonl", policy=POLICY)
    with pytest.raises(InvalidInput, match="same format"):
        mask_file(tmp_path / "bad.csv", tmp_path / "out.jsonl", policy=POLICY)
    with pytest.raises(InvalidInput, match=r"\.csv, \.jsonl or \.parquet"):
        mask_file(tmp_path / "bad.xlsx", tmp_path / "out.xlsx", policy=POLICY)


def _left_in(folder):
    """Every name in ``folder`` but the inputs (hidden .partial files included)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("in."))


@pytest.mark.parametrize(
    ("suffix", "bad_tail"),
    [
        ("jsonl", b"{not json\n"),
        ("jsonl", b'["ann@example.com"]\n'),
        ("jsonl", b'{"id": "9", "email": "\xff\xfe"}\n'),
        ("csv", b"9,ann@example.com,536-22-1234,02134,37,555,x,extra\n"),
        ("csv", b'9,"ann@example.com\n'),
    ],
    ids=["jsonl-syntax", "jsonl-not-object", "jsonl-bad-utf8", "csv-row-length", "csv-open-quote"],
)
def test_a_table_that_fails_after_batches_were_written_leaves_no_file(
    tmp_path, monkeypatch, suffix, bad_tail
):
    """Bad input after many batches are masked and written: no output, no prefix, no .partial."""
    monkeypatch.setattr(tabular, "_BLOCK_BYTES", 4096)
    monkeypatch.setattr(tabular, "_BATCH_ROWS", 100)
    rows = [dict(ROWS[0], id=str(i)) for i in range(2000)]
    source = tmp_path / f"in.{suffix}"
    if suffix == "csv":
        write_csv(source, rows)
    else:
        source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with source.open("ab") as table:
        table.write(bad_tail)
    progress = []
    with pytest.raises(InvalidInput) as caught:
        mask_file(
            source,
            tmp_path / f"out.{suffix}",
            policy=POLICY,
            on_progress=lambda done, total: progress.append(done),
        )
    assert len(progress) > 5  # batches were masked and written before the failure
    assert "ann@example.com" not in str(caught.value)
    assert _left_in(tmp_path) == []


def test_an_existing_output_is_refused_and_left_as_it_was(tmp_path):
    """No overwrite: an existing target, or the source under another name, is a Conflict."""
    write_csv(tmp_path / "in.csv", ROWS)
    (tmp_path / "out.csv").write_text("keep me\n")
    with pytest.raises(Conflict):
        mask_file(tmp_path / "in.csv", tmp_path / "out.csv", policy=POLICY)
    assert (tmp_path / "out.csv").read_text() == "keep me\n"
    original = (tmp_path / "in.csv").read_bytes()
    (tmp_path / "alias.csv").hardlink_to(tmp_path / "in.csv")  # the source, another name
    with pytest.raises(Conflict):
        mask_file(tmp_path / "in.csv", tmp_path / "alias.csv", policy=POLICY)
    assert (tmp_path / "in.csv").read_bytes() == original
    (tmp_path / "link.csv").symlink_to(tmp_path / "elsewhere.csv")  # dangling: still refused
    with pytest.raises(Conflict):
        tabular.write_table(pa.Table.from_pylist(ROWS), tmp_path / "link.csv")
    assert not (tmp_path / "elsewhere.csv").exists()
    assert _left_in(tmp_path) == ["alias.csv", "link.csv", "out.csv"]


def test_outputs_are_owner_only_and_a_missing_folder_is_a_usage_error(tmp_path):
    """Masked tables and released tables are 0600; a folder that is not there is InvalidInput."""
    write_csv(tmp_path / "in.csv", ROWS)
    mask_file(tmp_path / "in.csv", tmp_path / "out.csv", policy=POLICY)
    for suffix in ("csv", "jsonl", "parquet"):
        tabular.write_table(pa.Table.from_pylist(ROWS), tmp_path / f"release.{suffix}")
        assert (tmp_path / f"release.{suffix}").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "out.csv").stat().st_mode & 0o777 == 0o600
    assert tabular.read_table(tmp_path / "release.parquet").num_rows == 2
    with pytest.raises(InvalidInput, match="not a folder"):
        mask_file(tmp_path / "in.csv", tmp_path / "nowhere" / "out.csv", policy=POLICY)
    os.mkfifo(tmp_path / "in.pipe.csv")  # CSV is read with seeks: a clear refusal, no trace
    with pytest.raises(InvalidInput, match="regular file"):
        mask_file(tmp_path / "in.pipe.csv", tmp_path / "out2.csv", policy=POLICY)
