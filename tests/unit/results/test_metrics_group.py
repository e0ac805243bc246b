"""`aggregate_group` without Ray or a model: real lm-eval tasks, hand-written responses.

The rows stand in for what the workers write (one per request, plus the harness's target
log-likelihood rows of generation tasks). Every expected number is computed here from the
synthetic responses, not by lm-eval, so the tests pin the path responses -> filters ->
`process_results` -> aggregation, and the naming of the sample columns (`metric,filter`).
"""

from __future__ import annotations

import copy
import math
import random
import re
from pathlib import Path

import pytest

from harness.plan.requests import build_requests, load_tasks
from harness.results.metrics import TARGET_REQUEST_IDX, aggregate_group, brier_score, levenshtein

ZOO = Path(__file__).resolve().parents[3] / "tasks" / "zoo"
N_DOCS = 6
FILTERED = "metrics_arith_filtered"

# A generation task with two filter pipelines, as gsm8k has: "strict-match" takes a generation that
# is a bare number, "flexible-extract" the last number anywhere in it.
FILTERED_YAML = f"""task: {FILTERED}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {ZOO / 'data' / 'arith_2d_add.test.jsonl'}
test_split: test
num_fewshot: 0
output_type: generate_until
doc_to_text: "{{{{question}}}}"
doc_to_target: "{{{{answer}}}}"
target_delimiter: " "
generation_kwargs:
  until: ["\\n"]
  do_sample: false
  max_gen_toks: 8
filter_list:
  - name: strict-match
    filter:
      - function: regex
        regex_pattern: "^\\\\s*(-?\\\\d+)\\\\s*$"
      - function: take_first
  - name: flexible-extract
    filter:
      - function: regex
        group_select: -1
        regex_pattern: "(-?\\\\d+)"
      - function: take_first
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
"""

# Generations of a doc whose answer is {a} (and a wrong number {w}), hand-labelled:
# (template, exact match after stripping whitespace, strict-match, flexible-extract).
GENERATIONS = [
    (" {a}", 1, 1, 1),
    ("{a}  ", 1, 1, 1),
    (" {a}.", 0, 0, 1),
    (" {w} or maybe {a}", 0, 0, 1),
    (" {a} not {w}", 0, 0, 0),
    (" {w}", 0, 0, 0),
    ("", 0, 0, 0),
]


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("metrics_tasks")
    (folder / f"{FILTERED}.yaml").write_text(FILTERED_YAML)
    return folder


def _build(name: str, task_dir: Path, n_docs: int = N_DOCS):
    """A freshly loaded task with its requests: nothing shared with any other call."""
    task = load_tasks([name], [ZOO, task_dir])[name]
    return build_requests(name, task, None, n_docs, 1234)


@pytest.fixture(scope="module")
def built(task_dir):
    names = ["zoo_largest", "zoo_arith_2d_add", "zoo_english", FILTERED]
    tasks = load_tasks(names, [ZOO, task_dir])
    return {name: build_requests(name, tasks[name], None, N_DOCS, 1234) for name in names}


def _row(inst, **response) -> dict:
    row = {"doc_id": inst.doc_id, "request_idx": inst.idx, "request_type": inst.request_type,
           "loglikelihood": None, "is_greedy": None, "n_tokens": None, "generation": None}
    row.update(response)
    return row


def _mc_rows(built, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [_row(inst, loglikelihood=rng.uniform(-9.0, -0.5), is_greedy=False, n_tokens=1)
            for inst in built.instances]


def _gen_rows(built, choice: dict[int, int], seed: int = 0) -> list[dict]:
    """One generation per doc (GENERATIONS[choice[doc_id]]) and its target log-likelihood row."""
    rng = random.Random(seed)
    rows = []
    for inst in built.instances:
        if inst.doc_id not in choice:
            continue
        if inst.idx == TARGET_REQUEST_IDX:
            rows.append(_row(inst, loglikelihood=rng.uniform(-12.0, -1.0), is_greedy=False, n_tokens=2))
        else:
            answer = inst.doc["answer"]
            wrong = str(int(answer) + 1)
            rows.append(_row(inst, generation=GENERATIONS[choice[inst.doc_id]][0].format(a=answer, w=wrong)))
    return rows


def _metric(result, metric: str, filter_key: str = "none") -> dict:
    rows = [r for r in result.metrics if r["metric"] == metric and r["filter"] == filter_key]
    assert len(rows) == 1, (metric, filter_key, result.metrics)
    return rows[0]


def _mean_and_stderr(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var / len(values))


# --- metric values ------------------------------------------------------------------------------


def test_multiple_choice_acc_from_loglikelihoods(built):
    task = built["zoo_largest"]
    rows = _mc_rows(task, seed=3)
    result = aggregate_group(task, rows, bootstrap_iters=100)

    lls: dict[int, list[float]] = {}
    for row in sorted(rows, key=lambda r: (r["doc_id"], r["request_idx"])):
        lls.setdefault(row["doc_id"], []).append(row["loglikelihood"])
    docs = {inst.doc_id: inst.doc for inst in task.instances}
    acc, acc_norm, target, brier = {}, {}, {}, {}
    for doc_id, values in lls.items():
        gold = docs[doc_id]["label"]
        lengths = [len(c) for c in docs[doc_id]["choices"]]
        acc[doc_id] = float(max(range(len(values)), key=values.__getitem__) == gold)
        normed = [v / n for v, n in zip(values, lengths)]
        acc_norm[doc_id] = float(max(range(len(values)), key=normed.__getitem__) == gold)
        target[doc_id] = values[gold]
        probs = [math.exp(v) for v in values]
        probs = [p / sum(probs) for p in probs]
        brier[doc_id] = sum((p - (i == gold)) ** 2 for i, p in enumerate(probs))
    assert 0 < sum(acc.values()) < N_DOCS, "pick a seed where the argmax is sometimes right, sometimes not"

    assert [s["doc_id"] for s in result.samples] == list(range(N_DOCS))
    for sample in result.samples:
        assert sample["acc"] == acc[sample["doc_id"]]
        assert sample["acc_norm"] == acc_norm[sample["doc_id"]]
        assert sample["target_loglik"] == target[sample["doc_id"]]
        assert math.isclose(sample["brier"], brier[sample["doc_id"]], rel_tol=1e-12)
    mean, stderr = _mean_and_stderr(list(acc.values()))
    row = _metric(result, "acc")
    assert row["n"] == N_DOCS and math.isclose(row["value"], mean) and math.isclose(row["stderr"], stderr)
    assert math.isclose(_metric(result, "acc_norm")["value"], sum(acc_norm.values()) / N_DOCS)
    assert math.isclose(_metric(result, "target_loglik")["value"], sum(target.values()) / N_DOCS)
    assert math.isclose(_metric(result, "brier")["value"], sum(brier.values()) / N_DOCS)
    assert {(r["metric"], r["filter"]) for r in result.metrics} == {
        ("acc", "none"), ("acc_norm", "none"), ("target_loglik", "none"), ("brier", "none")}


def test_brier_helper_matches_the_softmax_definition():
    values, gold = [-1.0, -2.5, -0.3], 2
    probs = [math.exp(v) / sum(math.exp(u) for u in values) for v in values]
    assert math.isclose(brier_score(values, gold), sum((p - (i == gold)) ** 2 for i, p in enumerate(probs)))


def test_generation_exact_match_without_filters(built):
    """The zoo arithmetic tasks declare no filter_list: lm-eval's default "none" (take_first)."""
    task = built["zoo_arith_2d_add"]
    choice = {doc_id: doc_id % len(GENERATIONS) for doc_id in range(N_DOCS)}
    rows = _gen_rows(task, choice)
    result = aggregate_group(task, rows, bootstrap_iters=100)

    answers = {inst.doc_id: inst.doc["answer"] for inst in task.instances}
    generations = {r["doc_id"]: r["generation"] for r in rows if r["request_idx"] != TARGET_REQUEST_IDX}
    targets = {r["doc_id"]: r["loglikelihood"] for r in rows if r["request_idx"] == TARGET_REQUEST_IDX}
    expected = {doc_id: float(GENERATIONS[c][1]) for doc_id, c in choice.items()}
    for sample in result.samples:
        doc_id = sample["doc_id"]
        assert sample["exact_match"] == expected[doc_id], (generations[doc_id], answers[doc_id])
        assert sample["target_loglik"] == targets[doc_id]
        assert sample["edit_distance"] == levenshtein(generations[doc_id].strip(), answers[doc_id])
        assert not any("," in key for key in sample), "the 'none' filter is not spelled out in columns"
    assert result.samples[0]["edit_distance"] == 0.0  # " 73" against "73"
    mean, stderr = _mean_and_stderr(list(expected.values()))
    row = _metric(result, "exact_match")
    assert row["n"] == N_DOCS and math.isclose(row["value"], mean) and math.isclose(row["stderr"], stderr)
    assert math.isclose(_metric(result, "target_loglik")["value"], sum(targets.values()) / N_DOCS)
    assert {(r["metric"], r["filter"]) for r in result.metrics} == {
        ("exact_match", "none"), ("target_loglik", "none"), ("edit_distance", "none")}


def test_generation_filtered_metrics_and_column_names(built):
    task = built[FILTERED]
    choice = {doc_id: doc_id % len(GENERATIONS) for doc_id in range(N_DOCS)}
    result = aggregate_group(task, _gen_rows(task, choice), bootstrap_iters=100)

    strict = {doc_id: float(GENERATIONS[c][2]) for doc_id, c in choice.items()}
    flexible = {doc_id: float(GENERATIONS[c][3]) for doc_id, c in choice.items()}
    assert strict != flexible
    for sample in result.samples:
        assert sample["exact_match,strict-match"] == strict[sample["doc_id"]]
        assert sample["exact_match,flexible-extract"] == flexible[sample["doc_id"]]
        assert "exact_match" not in sample  # only the filters the task declares
    assert math.isclose(_metric(result, "exact_match", "strict-match")["value"],
                        sum(strict.values()) / N_DOCS)
    assert math.isclose(_metric(result, "exact_match", "flexible-extract")["value"],
                        sum(flexible.values()) / N_DOCS)
    assert _metric(result, "exact_match", "strict-match")["n"] == N_DOCS


def test_rolling_loglikelihood_perplexities(built):
    task = built["zoo_english"]
    rng = random.Random(5)
    rows = [_row(inst, loglikelihood=-rng.uniform(50.0, 400.0), n_tokens=rng.randint(40, 160))
            for inst in task.instances]
    result = aggregate_group(task, rows, bootstrap_iters=0)

    texts = {inst.doc_id: inst.doc["text"] for inst in task.instances}
    ll = sum(r["loglikelihood"] for r in rows)
    words = sum(len(re.split(r"\s+", t)) for t in texts.values())
    n_bytes = sum(len(t.encode("utf-8")) for t in texts.values())
    tokens = sum(r["n_tokens"] for r in rows)
    assert math.isclose(_metric(result, "word_perplexity")["value"], math.exp(-ll / words), rel_tol=1e-12)
    assert math.isclose(_metric(result, "byte_perplexity")["value"], math.exp(-ll / n_bytes), rel_tol=1e-12)
    assert math.isclose(_metric(result, "bits_per_byte")["value"], -ll / n_bytes / math.log(2), rel_tol=1e-12)
    assert math.isclose(_metric(result, "nll_per_token")["value"], -ll / tokens, rel_tol=1e-12)
    by_doc = {r["doc_id"]: r for r in rows}
    for sample in result.samples:
        assert sample["target_loglik"] == by_doc[sample["doc_id"]]["loglikelihood"]
        assert sample["n_tokens"] == by_doc[sample["doc_id"]]["n_tokens"]
        assert sample["n_bytes"] == len(texts[sample["doc_id"]].encode("utf-8"))
        # (loglik, weight) pairs are not scalars: no perplexity column per document
        assert not {"word_perplexity", "byte_perplexity", "bits_per_byte"} & set(sample)


# --- no shared state ------------------------------------------------------------------------------


def _snapshot(built) -> list:
    return [(inst.doc_id, inst.idx, copy.deepcopy(inst.resps), copy.deepcopy(inst.filtered_resps))
            for inst in built.instances]


@pytest.mark.parametrize("name", ["zoo_largest", FILTERED])
def test_aggregation_leaves_the_shared_instances_untouched(task_dir, name):
    """The BuiltTask (and the lm-eval Task's own instance list) serve every model of the run."""
    task = _build(name, task_dir)
    before = _snapshot(task)
    assert all(resps == [] and filtered == {} for _, _, resps, filtered in before)
    for seed in (1, 2):  # two models
        if name == "zoo_largest":
            aggregate_group(task, _mc_rows(task, seed=seed), bootstrap_iters=0)
        else:
            choice = {d: (d + seed) % len(GENERATIONS) for d in range(N_DOCS)}
            aggregate_group(task, _gen_rows(task, choice, seed=seed), bootstrap_iters=0)
        assert _snapshot(task) == before
        assert all(i.resps == [] and i.filtered_resps == {} for i in task.task.instances)


def test_model_after_model_equals_model_alone(task_dir):
    """Model A then model B on one BuiltTask gives B's numbers of B aggregated on a fresh one, also
    when B answered other documents and other things than A."""
    shared, fresh = _build(FILTERED, task_dir), _build(FILTERED, task_dir)
    a = _gen_rows(shared, {d: 0 for d in range(N_DOCS)}, seed=1)  # A: every answer right
    b_choice = {d: (d + 2) % len(GENERATIONS) for d in range(N_DOCS) if d != 1}  # B: doc 1 missing
    first = aggregate_group(shared, a, bootstrap_iters=100)
    after = aggregate_group(shared, _gen_rows(shared, b_choice, seed=2), bootstrap_iters=100)
    alone = aggregate_group(fresh, _gen_rows(fresh, b_choice, seed=2), bootstrap_iters=100)
    assert after == alone
    assert [s["doc_id"] for s in after.samples] == sorted(b_choice)
    assert _metric(first, "exact_match", "strict-match")["value"] == 1.0
    # and A again after B: A's numbers did not move either
    assert aggregate_group(shared, a, bootstrap_iters=100) == first
