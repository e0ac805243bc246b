"""Each imported model revision's size and tokens trained, from wherever they are known.

Field by field, the first source that knows wins: the files being imported (a table's columns, a 0.4
file's `model_num_parameters`), then the family table (`harness.ingest.families`), then --meta
(`harness.ingest.meta`), then what the run folder already holds from an earlier import (so adding
tasks for a model imported before needs no --meta again).

A model revision whose size is unknown everywhere (no total and no non-embedding count) stops the
import. One whose non-embedding count alone is unknown is imported with a note: every fit of
`harness analyze` is against non-embedding parameters, so it leaves that model out until --meta
gives the count.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import astuple, fields
from pathlib import Path

from harness.errors import UserError
from harness.ingest.families import family_sizes
from harness.ingest.meta import Meta
from harness.ingest.records import Parsed, Sizes

ModelKey = tuple[str, str]  # (model, revision)


def stated_sizes(parsed: Iterable[Parsed]) -> dict[ModelKey, tuple[Sizes, Path]]:
    """What the files themselves say, per model revision; two files that disagree stop the import."""
    stated: dict[ModelKey, tuple[Sizes, Path]] = {}
    for source in parsed:
        for row in source.scores:
            held, where = stated.get(row.model_key, (Sizes(), source.path))
            for f in fields(Sizes):
                mine, theirs = getattr(row.stated, f.name), getattr(held, f.name)
                if mine is not None and theirs is not None and mine != theirs:
                    raise UserError(f"{source.path}: {row.model}@{row.revision} has {f.name} {mine:,} here but "
                                    f"{theirs:,} in {where}; correct one of them")
            stated[row.model_key] = (held.or_else(row.stated), where)
    return stated


def resolve_sizes(parsed: list[Parsed], meta: Meta, folder: Mapping[ModelKey, Sizes]) -> dict[ModelKey, Sizes]:
    """Sizes of every model revision in `parsed`, by the precedence in the module docstring."""
    stated = stated_sizes(parsed)
    first_file = {row.model_key: source.path for source in reversed(parsed) for row in source.scores}
    resolved = {}
    for key in sorted(first_file):
        model, revision = key
        sizes = stated.get(key, (Sizes(), None))[0]
        sizes = sizes.or_else(family_sizes(model, revision) or Sizes()).or_else(meta.sizes(model, revision))
        sizes = sizes.or_else(folder.get(key, Sizes()))
        if sizes.n_params is None and sizes.n_params_nonembedding is None:
            raise UserError(f"{first_file[key]}: the size of {model}@{revision} is not known (not in the file, not "
                            f"a known family: Pythia, GPT-2); give its n_params and n_params_nonembedding in a "
                            f"--meta file under models: {model!r}")
        resolved[key] = sizes
    return resolved


def missing_nonembedding(sizes: Mapping[ModelKey, Sizes]) -> list[str]:
    """Notes for the model revisions the analysis will leave out (no non-embedding count)."""
    models = sorted({model for (model, _), s in sizes.items() if s.n_params_nonembedding is None})
    return [f"{model}: n_params_nonembedding unknown, so `harness analyze` leaves it out of every fit; give it "
            f"in --meta" for model in models]


def check_folder_sizes(sizes: Mapping[ModelKey, Sizes], folder: Mapping[ModelKey, Sizes], scores: Path) -> None:
    """A model revision keeps one size in a folder: this import may fill in what the folder does not know
    (its rows there then take the filled-in sizes) but not restate a known figure differently."""
    for key, mine in sorted(sizes.items()):
        held = folder.get(key)
        if held is not None and any(None not in pair and pair[0] != pair[1] for pair in zip(astuple(held), astuple(mine))):
            raise UserError(f"{scores}: {key[0]}@{key[1]} is there with {_shown(held)}, this import gives "
                            f"{_shown(mine)}; make --meta agree, or import into a new folder")


def _shown(sizes: Sizes) -> str:
    return ", ".join(f"{f.name} {getattr(sizes, f.name)}" for f in fields(Sizes))
