"""Results made elsewhere -> a run folder that `harness analyze` reads like one written by `harness run`.

    detect.py        which files to read and what each is, told by content
    lmeval_json.py   lm-eval results JSON, 0.4 and 0.3 layouts -> score rows (group rows skipped)
    lmeval_samples.py  lm-eval --log_samples JSONL -> per-document rows (model from the sibling results file)
    twins.py         the continuous twins (target_loglik, brier, edit_distance) from logged responses
    table.py         plain CSV / Parquet score tables
    families.py      published sizes and schedules (Pythia, GPT-2)
    meta.py          --meta YAML for every other model
    sizes.py         the precedence: file, family table, --meta, the folder's earlier import
    merge.py         duplicates and conflicts, with the folder's rows too
    folder.py        the run folder: refuse `harness run` folders; write scores, samples, manifest
    importer.py      all of it in order: read and check everything, then write

It sits beside `results` (cli -> ingest -> results): the results and analysis packages never import it.
"""
