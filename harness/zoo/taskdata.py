"""Loading the suite's committed JSONL files relative to the task folder, not the working directory.

lm-eval hands `dataset_kwargs: data_files` paths to `datasets.load_dataset`, which resolves relative
paths against the current directory; the harness and its Ray workers run from anywhere. The task
YAMLs therefore use `custom_dataset: !function utils.load`, where `utils.load` is a
`functools.partial` of `load_jsonl_splits` bound to the YAML's folder. A partial of a function of
an importable module pickles, so a built task can travel to a Ray worker.
"""

from __future__ import annotations

from pathlib import Path


def load_jsonl_splits(folder: str | Path, data_files: dict[str, str] | None = None, **_metadata):
    """DatasetDict of split -> JSONL file (relative names resolve against `folder`)."""
    import datasets

    if not data_files:
        raise ValueError("zoo task YAML needs dataset_kwargs.data_files (split -> file name)")
    files = {split: str((Path(folder) / name).resolve()) for split, name in data_files.items()}
    return datasets.load_dataset("json", data_files=files)
