"""Chance level: the accuracy of guessing uniformly among a multiple-choice task's answers.

Only acc and acc_norm have one: guessing picks the gold answer with probability 1/k for k choices
(acc_norm only rescales the log-likelihoods, the guess is the same). Generation metrics
(exact_match and the like) have no meaningful chance level in general: 0.0 is a floor, not what
guessing scores, so they get None, as does any task whose number of choices is unknown. The exception
is a generation task whose answer is, by construction, one of k strings in its prompt (KNOWN_GUESSES).

Where the number of choices comes from, best first:
  1. the per-document samples, when they carry an `n_choices` column: the mean of 1/k over the
     task's documents is the exact expected accuracy of guessing, also where k varies (ARC has a
     few 3- and 5-choice questions); the results stage does not write that column yet;
  2. KNOWN_CHOICES: lm-eval task definitions whose `doc_to_choice` is fixed in length;
  3. otherwise None.
"""
from __future__ import annotations

import numpy as np

CHANCE_METRICS = frozenset({"acc", "acc_norm"})
CHOICES_COLUMN = "n_choices"  # samples/ column (results.schemas.SAMPLES_FIXED): answers offered per document

# Choices per document in lm-eval 0.4's task YAMLs (lm_eval/tasks/<dir>/<file>: doc_to_choice), and
# the embedded zoo's multiple-choice task.
KNOWN_CHOICES = {
    "piqa": 2,  # piqa/piqa.yaml: [sol1, sol2]
    "winogrande": 2,  # winogrande/preprocess_winogrande.py: option1, option2
    "wsc": 2,  # super_glue/wsc/default.yaml: ['no', 'yes']
    "wsc273": 2,  # wsc273/default.yaml: options[0], options[1]
    "boolq": 2,  # super_glue/boolq/default.yaml: ["no", "yes"]
    "copa": 2,  # super_glue/copa/utils.py: choice1, choice2
    "arc_easy": 4,  # arc/arc_easy.yaml: choices.text (ARC has 3-5 on a few questions; 4 on almost all)
    "arc_challenge": 4,  # arc/arc_challenge.yaml, same definition
    "sciq": 4,  # sciq/sciq.yaml: three distractors and the answer
    "logiqa": 4,  # logiqa/logiqa.yaml: options (four per question)
    "hellaswag": 4,  # hellaswag/utils.py: the four endings
    "openbookqa": 4,  # openbookqa/openbookqa.yaml: choices.text (A-D)
    "zoo_largest": 4,  # tasks/zoo/zoo_largest.yaml; harness/zoo/formats.py largest_sample: four numbers
}
# Generation tasks whose answer is one of k strings shown in the prompt: picking one of them at random
# scores 1/k. The zoo's recall prompt lists 8 "key value" lines and asks one key (harness/zoo/formats.py,
# RECALL_PAIRS): a model that learned to answer with a value from the list but not the lookup scores
# 1/8, so the task is a negative control until some size beats that (issue 13: "no signal" otherwise).
KNOWN_GUESSES = {("zoo_recall", "exact_match"): 1 / 8}
# MMLU (mmlu/default/_default_template_yaml: ["A", "B", "C", "D"]; the continuation variant has the
# four answer texts) under its lm-eval 0.4 names (mmlu_<subject>, mmlu_<subject>_continuation,
# mmlusr_*) and the older harness's hendrycksTest-<subject>. MMLU-Pro (mmlu_pro*) has ten options
# and is generative in lm-eval, so it is excluded.
MMLU_PREFIXES = ("mmlu", "hendrycksTest-")
MMLU_CHOICES = 4


def known_choices(task: str) -> int | None:
    """The number of choices of a known lm-eval or zoo task, else None.

    >>> known_choices("piqa"), known_choices("mmlu_anatomy"), known_choices("mmlu_pro_law"), known_choices("x")
    (2, 4, None, None)
    """
    if task in KNOWN_CHOICES:
        return KNOWN_CHOICES[task]
    if task.startswith(MMLU_PREFIXES) and not task.startswith("mmlu_pro"):
        return MMLU_CHOICES
    return None


def chance_from_samples(task: str, samples) -> float | None:
    """The mean of 1 / n_choices over the task's documents (each counted once across models), or None
    when the samples lack the column or hold no usable value for the task."""
    if samples is None or CHOICES_COLUMN not in samples.columns or "task" not in samples.columns:
        return None
    rows = samples[samples["task"] == task]
    if "doc_id" in rows.columns:
        rows = rows.drop_duplicates("doc_id")
    k = rows[CHOICES_COLUMN].to_numpy(float)
    k = k[np.isfinite(k) & (k >= 1)]
    return float(np.mean(1.0 / k)) if k.size else None


def chance_level(task: str, metric: str, samples=None) -> float | None:
    """Accuracy of uniform guessing for (task, metric); None where chance is not defined or unknown.

    >>> chance_level("arc_easy", "acc"), chance_level("piqa", "acc_norm"), chance_level("zoo_arith_2d_add", "exact_match")
    (0.25, 0.5, None)
    """
    if (task, metric) in KNOWN_GUESSES:
        return KNOWN_GUESSES[(task, metric)]
    if metric not in CHANCE_METRICS:
        return None
    from_samples = chance_from_samples(task, samples)
    if from_samples is not None:
        return from_samples
    k = known_choices(task)
    return None if k is None else 1.0 / k
