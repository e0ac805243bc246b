"""The progress line stays readable on a ladder of 25 checkpoints (the first committed ladder; the
IsoFLOP ladder has 41): totals, rate, ETA and the three revisions with the most work left, in at
most 120 characters (it listed every revision and ran past what a terminal shows)."""

from __future__ import annotations

import io
import re
from collections import Counter

from harness.engine.progress import WIDTH, Progress, status_line

# The first committed default sweep: zoo-1..zoo-5 x step256..step4096, 25 checkpoints.
NAMES = [f"zoo-{size}@step{step}" for size in range(1, 6) for step in (256, 512, 1024, 2048, 4096)]
BUSIEST = ("zoo-2@step512", "zoo-4@step1024", "zoo-1@step4096")  # neither first nor last in NAMES


def _models() -> list[tuple[str, int, int, float]]:
    """(name, shards done, shards total, work left); the BUSIEST have the most left, in that order."""
    left = {name: 10.0 + i for i, name in enumerate(NAMES)}
    left.update({BUSIEST[0]: 300.0, BUSIEST[1]: 200.0, BUSIEST[2]: 100.0})
    return [(name, 1, 4, left[name]) for name in NAMES]


def test_the_line_has_totals_rate_eta_and_the_three_busiest_revisions():
    line = status_line((37, 110), (1234, 5678), 98.72, _models())
    assert len(line) <= WIDTH == 120, (len(line), line)
    assert "shards 37/110" in line and "req 1234/5678" in line
    assert "12.5 req/s" in line
    assert "eta 0:05:55" in line  # (5678 - 1234) / 12.5 s
    shown = re.findall(r"zoo-\d@step\d+", line)
    assert shown == list(BUSIEST), line
    assert line.endswith(" +22 more")


def test_long_names_are_shortened_from_the_middle_and_keep_their_revision():
    models = [(f"EleutherAI-pythia-12b-deduped@step{n}", 0, 4, float(n)) for n in range(1000, 26000, 1000)]
    line = status_line((37, 110), (1234, 5678), 98.72, models, failed=3)
    assert len(line) <= WIDTH and "failed 3" in line and line.endswith(" +22 more"), line
    assert re.findall(r"(\S+) 0/4 ", line) == ["Eleu..25000", "Eleu..24000", "Eleu..23000"], line


def test_with_no_room_for_three_fewer_are_named_and_the_rest_counted():
    models = [(f"EleutherAI-pythia-12b-deduped@step{n}", 0, 400, float(n)) for n in range(1000, 26000, 1000)]
    line = status_line((3700, 10000), (123456, 1000000), 9876.5, models, failed=3)
    assert len(line) <= WIDTH, line
    named = line.count(" 0/400")
    assert 1 <= named < 3 and line.endswith(f" +{25 - named} more"), line


def test_finished_revisions_are_not_listed_and_nothing_left_lists_none():
    models = [("a@main", 4, 4, 0.0), ("b@main", 1, 4, 9.0)]
    assert status_line((5, 8), (10, 20), 2.0, models).endswith("| b@main 1/4")
    assert "|" not in status_line((8, 8), (20, 20), 2.0, [("a@main", 4, 4, 0.0)])
    assert "eta ?" in status_line((0, 8), (0, 20), 0.0, models)  # no rate yet: no ETA


def test_progress_ranks_by_requests_left_and_keeps_log_lines_short():
    stream = io.StringIO()  # not a terminal: a line per draw, each ending in a newline
    requests = Counter({name: 40 for name in NAMES})
    requests.update({BUSIEST[0]: 300, BUSIEST[1]: 200, BUSIEST[2]: 100})
    progress = Progress(Counter({name: 4 for name in NAMES}), sum(requests.values()), stream=stream,
                        interval=0.0, requests_per_model=requests)
    for name in NAMES:
        progress.update(name, 10)
    progress.close()
    lines = stream.getvalue().splitlines()
    assert lines and all(len(line) <= WIDTH for line in lines), max(lines, key=len)
    assert re.findall(r"zoo-\d@step\d+", lines[-1]) == list(BUSIEST)
    assert "shards 25/100" in lines[-1] and "+22 more" in lines[-1]
