"""Write the trimmed copy of the Pythia suite's published zero-shot evaluations kept in this folder.

    python examples/pythia-evals/trim.py PYTHIA_CHECKOUT [OUT]

PYTHIA_CHECKOUT is a checkout of EleutherAI/pythia (Apache-2.0; its folder evals/pythia-v1 is read)
or that evals/pythia-v1 folder itself. For each standard (non-deduplicated) size folder
`pythia-<size>/zero-shot/*.json` it writes OUT/pythia-<size>/zero-shot/<same name>, default OUT
being this folder, keeping only the tasks in TASKS (results and versions; config as it is) and the
files' own JSON style (2-space indent, key order, no final newline). Left out: the 57 MMLU subjects
(`hendrycksTest-*`) and the CrowS-Pairs bias sets (`crows_pairs_*`), which make up most of the bytes
and are not needed to show scaling curves. Standard library only.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

TASKS = ("lambada_openai", "piqa", "arc_easy", "arc_challenge", "winogrande", "sciq", "logiqa", "wsc")
SIZE_FOLDER = re.compile(r"^pythia-\d+(\.\d+)?[mb]$")  # pythia-70m ... pythia-12b, not -deduped


def evals_root(checkout: Path) -> Path:
    nested = checkout / "evals" / "pythia-v1"
    return nested if nested.is_dir() else checkout


def trim(data: dict) -> dict:
    """The same file with only TASKS in `results` and `versions`, in the file's own order."""
    out = dict(data)
    for section in ("results", "versions"):
        if isinstance(data.get(section), dict):
            out[section] = {task: v for task, v in data[section].items() if task in TASKS}
    return out


def main(argv: list[str]) -> int:
    if not argv or len(argv) > 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    root = evals_root(Path(argv[0]))
    out = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent
    files = sorted(p for p in root.glob("pythia-*/zero-shot/*.json") if SIZE_FOLDER.match(p.parent.parent.name))
    if not files:
        print(f"no pythia-<size>/zero-shot/*.json under {root}", file=sys.stderr)
        return 1
    for path in files:
        target = out / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(trim(json.loads(path.read_text())), indent=2), encoding="utf-8")
    print(f"wrote {len(files)} files under {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
