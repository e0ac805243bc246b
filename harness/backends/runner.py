"""Scoring requests through lm-eval's `LM` contract with a loaded model. No Ray here.

`RequestRunner` is the stateful predictor a Ray worker wraps: load once in the constructor, run a
list of lm-eval `Instance`s per call, one request-table row per instance. It is tested without Ray.
"""

from __future__ import annotations

import math
from typing import Any

from harness.backends.loading import LoadSpec, NonFiniteLoglikelihoodError, count_parameters, load_model, resolve_device
from harness.backends.registry import make_lm


class RequestRunner:
    """Holds one model and scores lists of lm-eval Instances.

    Example:
        runner = RequestRunner(LoadSpec(checkpoint, dtype="float32", device="cpu", backend="hf", batch_size=8))
        rows = runner.run(instances)   # one dict per instance, request-table columns
    """

    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        self.device = resolve_device(spec.device)
        self.model, self.tokenizer = load_model(spec, self.device)
        self.params = count_parameters(self.model)
        self.lm = make_lm(spec.backend, self.model, self.tokenizer, self.device, spec.batch_size)

    def rebatch(self, batch_size: int) -> None:
        """A new LM around the loaded model with another batch size (after an out-of-memory error)."""
        self.lm = make_lm(self.spec.backend, self.model, self.tokenizer, self.device, batch_size)

    def _n_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def run(self, instances: list) -> list[dict]:
        """Score instances (all request types mixed); rows follow the requests schema minus ids."""
        by_type: dict[str, list[int]] = {}
        for i, inst in enumerate(instances):
            by_type.setdefault(inst.request_type, []).append(i)
        rows: list[dict | None] = [None] * len(instances)
        for request_type, positions in by_type.items():
            batch = [instances[i] for i in positions]
            outputs = getattr(self.lm, request_type)(batch)
            for pos, inst, out in zip(positions, batch, outputs, strict=True):
                rows[pos] = self._row(inst, request_type, out)
        return rows  # type: ignore[return-value]

    def _row(self, inst: Any, request_type: str, out: Any) -> dict:
        row = {"loglikelihood": None, "is_greedy": None, "generation": None, "n_tokens": 0}
        if request_type == "loglikelihood":
            row["loglikelihood"], row["is_greedy"] = float(out[0]), bool(out[1])
            row["n_tokens"] = self._n_tokens(inst.args[1])
        elif request_type == "loglikelihood_rolling":
            row["loglikelihood"] = float(out)
            row["n_tokens"] = self._n_tokens(inst.args[0])
        else:
            row["generation"] = str(out)
            row["n_tokens"] = self._n_tokens(str(out))
        if row["loglikelihood"] is not None and not math.isfinite(row["loglikelihood"]):
            raise NonFiniteLoglikelihoodError(
                f"request {inst.metadata[0]} doc {inst.doc_id} scored {row['loglikelihood']}: the "
                f"checkpoint's weights or dtype are broken (try dtype float32)")
        return row
