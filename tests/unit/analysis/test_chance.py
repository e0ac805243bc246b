"""chance_level: guessing accuracy from the samples' number of choices, else lm-eval's task definitions."""
import json
from pathlib import Path

import pandas as pd
import pytest

from harness.analysis.chance import CHOICES_COLUMN, KNOWN_CHOICES, chance_level, known_choices

ZOO = Path(__file__).resolve().parents[3] / "tasks" / "zoo"


@pytest.mark.parametrize("task, chance", [
    ("piqa", 0.5), ("winogrande", 0.5), ("wsc", 0.5), ("boolq", 0.5), ("copa", 0.5),
    ("arc_easy", 0.25), ("arc_challenge", 0.25), ("sciq", 0.25), ("logiqa", 0.25), ("hellaswag", 0.25),
    ("openbookqa", 0.25), ("mmlu_anatomy", 0.25), ("mmlu_anatomy_continuation", 0.25),
    ("hendrycksTest-anatomy", 0.25), ("zoo_largest", 0.25),
])
def test_known_multiple_choice_tasks(task, chance):
    assert chance_level(task, "acc") == chance and chance_level(task, "acc_norm") == chance


@pytest.mark.parametrize("task, metric", [
    ("zoo_arith_2d_add", "exact_match"),  # generation: 0 is a floor, not what guessing scores
    ("arc_easy", "exact_match"),
    ("arc_easy", "brier"),  # not an accuracy
    ("mmlu_pro_law", "acc"),  # ten options, and generative in lm-eval: not MMLU's four
    ("my_private_task", "acc"),  # unknown number of choices
])
def test_no_chance_where_guessing_is_undefined_or_unknown(task, metric):
    assert chance_level(task, metric) is None


def test_samples_with_the_number_of_choices_win_over_the_table():
    # Three documents with 4, 4 and 5 choices, seen by two models (counted once): (1/4 + 1/4 + 1/5) / 3.
    docs = pd.DataFrame({"model": ["a"] * 3 + ["b"] * 3, "task": "arc_easy", "doc_id": [0, 1, 2] * 2,
                         CHOICES_COLUMN: [4, 4, 5] * 2})
    other = pd.DataFrame({"model": ["a"], "task": "piqa", "doc_id": [0], CHOICES_COLUMN: [2]})
    samples = pd.concat([docs, other], ignore_index=True)
    assert chance_level("arc_easy", "acc", samples) == pytest.approx(0.7 / 3)
    assert chance_level("piqa", "acc", samples) == 0.5
    assert chance_level("arc_easy", "exact_match", samples) is None  # the metric decides first


def test_samples_without_the_column_fall_back_to_the_table():
    samples = pd.DataFrame({"model": ["a"], "task": ["arc_easy"], "doc_id": [0], "acc": [1.0]})
    assert chance_level("arc_easy", "acc", samples) == 0.25
    assert chance_level("unknown", "acc", samples) is None


def test_the_zoo_task_has_four_choices_in_its_data():
    docs = [json.loads(line) for line in (ZOO / "data" / "largest.test.jsonl").read_text().splitlines() if line]
    assert docs and {len(d["choices"]) for d in docs} == {KNOWN_CHOICES["zoo_largest"]}
    assert "doc_to_choice: \"{{choices}}\"" in (ZOO / "zoo_largest.yaml").read_text()


def test_recall_guesses_among_the_values_in_its_prompt():
    """zoo_recall's answer is one of the 8 values listed in each prompt: guessing among them scores 1/8."""
    from harness.zoo.formats import RECALL_PAIRS

    assert chance_level("zoo_recall", "exact_match") == 1 / RECALL_PAIRS == 1 / 8
    docs = [json.loads(line) for line in (ZOO / "data" / "recall.test.jsonl").read_text().splitlines() if line]
    for doc in docs[:50]:
        listed = [line.split()[1] for line in doc["question"].split("\n\n")[0].splitlines()]
        assert len(listed) == RECALL_PAIRS and str(doc["answer"]) in listed
    assert chance_level("zoo_recall", "edit_distance") is None  # lower is better: no guessing level


def test_known_choices_prefixes():
    assert known_choices("mmlusr_answer_only_anatomy") == 4
    assert known_choices("mmlu_pro") is None and known_choices("pro_mmlu") is None
