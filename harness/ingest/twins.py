"""The continuous twins of a document's discrete metrics, from the responses lm-eval logged.

The same definitions as a `harness run` (`harness.results.metrics`), so an imported folder and a
run folder can be compared and analysed alike:
* multiple_choice: `target_loglik`, the log-likelihood of the gold choice, and `brier`, the Brier score
  of the softmax over the choices' log-likelihoods (`results.metrics.brier_score`);
* loglikelihood_rolling: `target_loglik` of the whole document, with `n_words` and `n_bytes` from the
  word/byte perplexity pairs lm-eval logs (`n_tokens` is not logged, so `nll_per_token` is not made);
* generate_until: `edit_distance` between the raw generation and the gold answer (the harness's other
  twin there, the gold answer's log-likelihood, needs a request lm-eval never makes).

lm-eval's sample logger writes every response as a string (`["-17.9", "False"]`) and the target as
`str(doc_to_target(doc))`; the gold choice is recovered as `_gold_index` says.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.ingest.records import as_count, as_float
from harness.results.metrics import brier_score, continuous_metrics, levenshtein


@dataclass(frozen=True)
class TaskConfig:
    """The parts of a task's lm-eval config (the results file's `configs`) the twins need."""

    output_type: str | None = None
    doc_to_target: Any = None
    target_delimiter: str = " "

    @classmethod
    def of(cls, config: Any) -> TaskConfig:
        if not isinstance(config, Mapping):
            return cls()
        return cls(config.get("output_type"), config.get("doc_to_target"), str(config.get("target_delimiter", " ")))


def document_twins(line: Mapping, config: TaskConfig) -> dict[str, float | int]:
    """The twin columns of one logged document (nothing for output types the harness has no twin for)."""
    if config.output_type == "multiple_choice":
        return _choice_twins(line, config)
    if config.output_type == "loglikelihood_rolling":
        return _rolling_twins(line)
    if config.output_type == "generate_until":
        generation, target = _first(_first(line.get("resps"))), _first(_literal(line.get("target")))
        if generation is not None and target is not None:
            return {"edit_distance": float(levenshtein(str(generation).strip(), str(target).strip()))}
    return {}


def twin_metrics(output_type: str | None, rows: Sequence[Mapping]) -> list[dict]:
    """Score rows (metric, filter, value, stderr, n) of the twins' means, as `harness run` writes them."""
    return continuous_metrics(_OutputType(output_type), list(rows))


@dataclass(frozen=True)
class _OutputType:
    # continuous_metrics reads only `output_type` of the BuiltTask a run passes it; an import has no
    # built task (no lm-eval task is loaded), so this stands in for it.
    output_type: str | None


def _choice_twins(line: Mapping, config: TaskConfig) -> dict[str, float | int]:
    logliks = [as_float(_first(_first(resp))) for resp in line.get("resps") or []]
    if not logliks or any(ll is None for ll in logliks):
        return {}
    counted = {"n_choices": len(logliks)}  # as a run records it: the analysis's chance level
    gold = _gold_index(line, config, _choices(line.get("arguments"), config.target_delimiter))
    if gold is None or not 0 <= gold < len(logliks):
        return counted
    return {**counted, "target_loglik": logliks[gold], "brier": brier_score(logliks, gold)}


def _rolling_twins(line: Mapping) -> dict[str, float | int]:
    out: dict[str, float | int] = {}
    loglik = as_float(_first(_first(line.get("resps"))))
    if loglik is not None:
        out["target_loglik"] = loglik
    for column, metrics in (("n_words", ("word_perplexity",)), ("n_bytes", ("byte_perplexity", "bits_per_byte"))):
        pairs = [line[m] for m in metrics if isinstance(line.get(m), list) and len(line[m]) == 2]
        if pairs and as_count(pairs[0][1]) is not None:
            out[column] = as_count(pairs[0][1])
    return out


def _gold_index(line: Mapping, config: TaskConfig, choices: list[str]) -> int | None:
    """The gold choice, as lm-eval (and `results.metrics._gold_index`) reads `doc_to_target`: a field of
    the document is taken as it is (an int is an index, a string is a choice's text); a rendered
    target that is all digits is an index (lm-eval converts it so when the task has choices)."""
    doc, field = line.get("doc"), config.doc_to_target
    from_field = isinstance(field, str) and isinstance(doc, Mapping) and field in doc
    gold = _first(doc[field] if from_field else _literal(line.get("target")))
    if isinstance(gold, str) and gold.strip().isdigit() and not from_field:
        gold = int(gold.strip())
    if isinstance(gold, str):
        return choices.index(gold) if gold in choices else None
    return gold if isinstance(gold, int) and not isinstance(gold, bool) else None


def _choices(arguments: Any, delimiter: str) -> list[str]:
    """Each choice's text from the logged requests: (context, delimiter + choice), as
    `{"gen_args_0": {"arg_0": ..., "arg_1": ...}}` in a file, or a list of pairs in memory."""
    pairs = [[a.get("arg_0"), a.get("arg_1")] for a in arguments.values()] if isinstance(arguments, Mapping) \
        else list(arguments or [])
    continuations = [str(p[1]) if isinstance(p, (list, tuple)) and len(p) > 1 else "" for p in pairs]
    return [c[len(delimiter):] if delimiter and c.startswith(delimiter) else c for c in continuations]


def _literal(target: Any) -> Any:
    """A logged target back to a value where it was a list (`str(["a", "b"])`); else as it is."""
    if isinstance(target, str) and target.startswith("["):
        try:
            return ast.literal_eval(target)
        except (ValueError, SyntaxError):
            return target
    return target


def _first(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return value[0] if value else None
    return value
