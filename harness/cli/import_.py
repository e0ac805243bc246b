"""`harness import SRC... --out RUN_DIR [--meta META.yaml] [--no-analyze]`: results made elsewhere
(lm-eval JSON and --log_samples JSONL, CSV or Parquet score tables) into a run folder.

Exit codes, as `harness run`'s: 0 imported (and analysed); 2 bad input, nothing written; 3 imported,
but the analysis failed (the import stays; rerun `harness analyze RUN_DIR`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_ANALYSIS_FAILED = 3

_EPILOG = """Formats are told by content: lm-eval results JSON (0.4 `results_<timestamp>.json`, or 0.3), lm-eval
--log_samples JSONL (`samples_<task>_<timestamp>.jsonl`, read with the results file beside it), and CSV or
Parquet tables with columns model, revision, n_params, tokens_trained, task, metric, value [stderr, n,
filter, n_params_nonembedding, finished_schedule]. Folders are searched for *.json, *.jsonl, *.csv, *.parquet.
Sizes: from the file, else the family table (Pythia, GPT-2), else --meta:
  models: {NAME: {n_params: N, n_params_nonembedding: N, tokens_per_step: N, tokens_trained: N}}"""


def register(subparsers) -> None:
    p = subparsers.add_parser("import", help="import lm-eval results or score tables into a run folder",
                              description="Write RUN_DIR's scores.parquet, samples/ and manifest.json from results "
                                          "made elsewhere, so that `harness analyze RUN_DIR` reads them.",
                              epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sources", nargs="+", type=Path, metavar="SRC", help="result files or folders of them")
    p.add_argument("--out", required=True, metavar="RUN_DIR",
                   help="run folder to write (new, or one written by an earlier import), or a bucket URL "
                        "(s3://..., gs://...)")
    p.add_argument("--meta", type=Path, metavar="META.yaml", help="sizes and tokens of models no file or family gives")
    p.add_argument("--no-analyze", action="store_true", help="skip fits, plots and report")
    p.set_defaults(func=cmd_import)


def cmd_import(args: argparse.Namespace) -> int:
    from harness.ingest.importer import import_sources, summary_line

    from harness.results.mirror import working_folder

    with working_folder(args.out) as run_dir:  # a bucket: its working copy, uploaded at the end
        summary = import_sources(args.sources, run_dir, args.meta, log=print)
        print(summary_line(summary))
        if args.no_analyze:
            return 0
        return 0 if analyze_imported(run_dir) else EXIT_ANALYSIS_FAILED


def analyze_imported(run_dir: Path) -> bool:
    """The analysis of the folder just written; a failure is one line and the import stays."""
    from harness.errors import UserError, first_line

    try:
        from harness.analysis.analyze import analyze_run

        summary = analyze_run(run_dir)
    except UserError as exc:  # nothing to fit (one size, say) is an answer, not a failure
        print(f"harness: analysis skipped: {exc}")
        return True
    except Exception as exc:  # noqa: BLE001 - the import is written and must outlive a bug in the analysis
        print(f"harness: analysis failed ({first_line(exc, with_type=True)}); the import is written; rerun it "
              f"with `harness analyze {run_dir}`", file=sys.stderr)
        return False
    print(f"wrote {summary.fits_path}, {summary.report_path} and {len(summary.plots)} plots")
    for reason in summary.skipped:
        print(f"skipped: {reason}")
    return True
