"""analyze_run replaces fits.parquet, bands.parquet, report.md and the plots whole or not at all.

Each test analyses a run once, then analyses it again with one write made to fail halfway (some
bytes reach the file, then the disk is "full"). The file from the first analysis must survive
byte for byte, and no temporary file may be left in the run folder.
"""
import errno
import io
import shutil
from pathlib import Path

import matplotlib.figure
import pyarrow.parquet
import pytest

from harness.analysis.analyze import analyze_run
from tests.unit.analysis.test_analyze import SIZES, make_run

PLOT = "plots/emergence_mc_acc.png"


def _disk_full() -> OSError:
    return OSError(errno.ENOSPC, "No space left on device (injected by the test)")


def _write_half(where, data: bytes) -> None:
    """Write the first half of `data` to a path or an open binary handle."""
    if hasattr(where, "write"):
        where.write(data[: len(data) // 2])
        where.flush()
    else:
        with open(where, "wb") as handle:
            handle.write(data[: len(data) // 2])


def _fail_parquet(monkeypatch, column: str) -> None:
    """pyarrow's write_table (under pandas' to_parquet too) fails halfway for the table with `column`."""
    real = pyarrow.parquet.write_table

    def write_table(table, where, *args, **kwargs):
        if column not in table.column_names:
            return real(table, where, *args, **kwargs)
        _write_half(where, b"PAR1" + b"\0" * 64)
        raise _disk_full()

    monkeypatch.setattr(pyarrow.parquet, "write_table", write_table)


def _fail_png(monkeypatch) -> None:
    def savefig(self, fname, *args, **kwargs):
        _write_half(fname, b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
        raise _disk_full()

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)


class _HalfWriter:
    """A text file whose write of the report gets half the text onto disk, then fails."""

    def __init__(self, handle):
        self._handle = handle

    def write(self, text: str) -> int:
        if "# Scaling analysis" in text:
            self._handle.write(text[: len(text) // 2])
            self._handle.flush()
            raise _disk_full()
        return self._handle.write(text)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._handle.__exit__(*exc)

    def __getattr__(self, name):
        return getattr(self._handle, name)


def _fail_text(monkeypatch) -> None:
    """Every text file opened for writing (Path.write_text, os.fdopen, ...) goes through io.open."""
    real = io.open

    def open_(file, mode="r", *args, **kwargs):
        handle = real(file, mode, *args, **kwargs)
        return _HalfWriter(handle) if "w" in mode and "b" not in mode else handle

    monkeypatch.setattr(io, "open", open_)


FAILURES = {
    "fits.parquet": lambda mp: _fail_parquet(mp, "param"),
    "bands.parquet": lambda mp: _fail_parquet(mp, "low"),
    "report.md": _fail_text,
    PLOT: _fail_png,
}


@pytest.fixture(scope="module")
def first_analysis(tmp_path_factory):
    run = make_run(tmp_path_factory.mktemp("atomic"), sizes=SIZES[:4], tasks=("mc",))
    analyze_run(run, n_boot=20, seed=0)
    return run


@pytest.mark.parametrize("name", sorted(FAILURES))
def test_a_failed_write_leaves_the_previous_file_whole(first_analysis, tmp_path, monkeypatch, name):
    run = Path(shutil.copytree(first_analysis, tmp_path / "run"))
    before = (run / name).read_bytes()
    assert len(before) > 100
    FAILURES[name](monkeypatch)
    with pytest.raises(OSError, match="injected"):
        analyze_run(run, n_boot=20, seed=1)
    assert (run / name).read_bytes() == before
    assert not [p for p in run.rglob(".tmp-*")], "a temporary file was left behind"


def test_the_analysis_still_replaces_its_files(first_analysis, tmp_path):
    run = Path(shutil.copytree(first_analysis, tmp_path / "run"))
    stale = "stale text from an earlier analysis\n"
    (run / "report.md").write_text(stale)
    analyze_run(run, n_boot=20, seed=1)
    assert (run / "report.md").read_text().startswith("# Scaling analysis")
    assert not [p for p in run.rglob(".tmp-*")]
