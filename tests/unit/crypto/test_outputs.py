"""New output files: unnamed while written, named whole at the end, never over a file."""

from __future__ import annotations

import errno
import os

import pytest

from bastion.crypto import outputs
from bastion.crypto.outputs import write_new_file
from bastion.errors import Conflict


class Boom(Exception):
    """A failure half way through writing."""


@pytest.fixture(params=["unnamed", "named"])
def path_kind(request, monkeypatch):
    """Both ways of writing: O_TMPFILE, and the fallback for filesystems without it."""
    if request.param == "named":

        def refuse(directory):
            raise OSError(errno.EOPNOTSUPP, "no O_TMPFILE on this filesystem")

        monkeypatch.setattr(outputs, "open_unnamed", refuse)
    return request.param


def test_nothing_has_a_name_while_the_file_is_written(tmp_path):
    """On a filesystem with O_TMPFILE the folder shows nothing until the file is complete."""
    seen = []

    def write(sink):
        sink.write(b"secret prefix")
        sink.flush()
        seen.append(sorted(os.listdir(tmp_path)))
        return 13

    assert write_new_file(tmp_path / "out", write) == 13
    assert seen == [[]]  # not even a hidden .partial
    assert (tmp_path / "out").read_bytes() == b"secret prefix"


def test_the_fallback_names_a_private_partial_file_while_it_writes(tmp_path, path_kind):
    """Without O_TMPFILE a hidden 0600 .partial exists during the write (the weaker path)."""
    modes = []

    def write(sink):
        sink.write(b"x")
        modes.extend(p.stat().st_mode & 0o777 for p in tmp_path.iterdir())
        return 1

    write_new_file(tmp_path / "out", write)
    assert modes == ([] if path_kind == "unnamed" else [0o600])
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_complete_file_is_owner_only(tmp_path, path_kind):
    """The named result has mode 0600 and exactly what was written, whatever the umask."""
    old = os.umask(0)
    try:
        write_new_file(tmp_path / "out", lambda sink: sink.write(b"data"))
    finally:
        os.umask(old)
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "out").read_bytes() == b"data"


@pytest.mark.parametrize("failure", [Boom, KeyboardInterrupt, OSError])
def test_a_failed_write_leaves_nothing(tmp_path, path_kind, failure):
    """An exception, Ctrl-C or a full disk half way: no target and no temporary file."""

    def write(sink):
        sink.write(b"verified prefix" * 10_000)
        raise failure()

    with pytest.raises(failure):
        write_new_file(tmp_path / "out", write)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_target_is_never_overwritten(tmp_path, path_kind):
    """A file (or a symlink, even dangling) at the target is a Conflict and stays as it was."""
    (tmp_path / "out").write_bytes(b"keep me")
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    for name in ("out", "link"):
        with pytest.raises(Conflict):
            write_new_file(tmp_path / name, lambda sink: sink.write(b"new"))
    assert (tmp_path / "out").read_bytes() == b"keep me"
    assert not (tmp_path / "nowhere").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "out"]


def test_a_target_created_while_writing_wins(tmp_path, path_kind):
    """Another process creating the target during the write: Conflict, its file kept."""

    def write(sink):
        (tmp_path / "out").write_bytes(b"theirs")
        return sink.write(b"mine")

    with pytest.raises(Conflict):
        write_new_file(tmp_path / "out", write)
    assert (tmp_path / "out").read_bytes() == b"theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_other_open_errors_are_not_hidden_by_the_fallback(tmp_path):
    """A missing folder is an error, not a reason to try another way."""
    with pytest.raises(FileNotFoundError):
        write_new_file(tmp_path / "missing" / "out", lambda sink: sink.write(b"x"))
