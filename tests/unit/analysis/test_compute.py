"""Compute arithmetic reproduces the textbook rows (GPT-3, the 20-tokens rule) and the CLI verb works."""
import argparse

import pandas as pd
import pytest

from harness.analysis import compute
from harness.cli import compute as cli_compute
from harness.errors import UserError
from harness.analysis.fit import CHINCHILLA_PAPER


def _cli(argv):
    parser = argparse.ArgumentParser(prog="harness")
    cli_compute.register(parser.add_subparsers(dest="verb"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_gpt3_training_compute():
    # Brown et al. 2020: 175B parameters, 300B tokens -> about 3.1e23 FLOPs.
    assert compute.training_flops(175e9, 300e9) == pytest.approx(3.15e23, rel=1e-12)


def test_twenty_tokens_rule_for_7b():
    s = compute.summarize(7e9)
    assert s.tokens == pytest.approx(140e9) and s.tokens_source.startswith("20")
    assert s.flops == pytest.approx(6 * 7e9 * 140e9)


def test_flops_give_tokens_and_frontier_spends_the_same_budget():
    s = compute.summarize(70e9, flops=5.88e23)
    assert s.tokens == pytest.approx(1.4e12, rel=1e-9)
    assert 6 * s.n_opt * s.d_opt == pytest.approx(5.88e23, rel=1e-9)
    # The frontier point predicts no higher loss than the given split of the same compute.
    assert s.loss_opt <= s.loss
    # With alpha > beta the optimum spends more of any extra compute on data than on parameters.
    bigger = compute.summarize(70e9, flops=5.88e24)
    assert bigger.d_opt / s.d_opt > bigger.n_opt / s.n_opt


@pytest.mark.parametrize("text, value", [("7e9", 7e9), ("7B", 7e9), ("300b", 3e11), ("1.5T", 1.5e12), ("125M", 1.25e8)])
def test_parse_count_accepts_suffixes(text, value):
    assert compute.parse_count(text, "--params") == pytest.approx(value)


@pytest.mark.parametrize("text", ["seven", "-3", "0", "7X"])
def test_parse_count_rejects_garbage_naming_the_flag(text):
    with pytest.raises(UserError, match="--params"):
        compute.parse_count(text, "--params")


def test_cli_compute_prints_gpt3_row(capsys):
    assert _cli(["compute", "--params", "175B", "--tokens", "300B"]) == 0
    out = capsys.readouterr().out
    assert "3.15e+23 FLOPs" in out and "1.71" in out


def test_cli_compute_rejects_tokens_and_flops_together():
    with pytest.raises(SystemExit) as exc:
        _cli(["compute", "--params", "7B", "--tokens", "1e11", "--flops", "1e21"])
    assert exc.value.code == 2


def test_frontier_from_a_runs_fits_parquet(tmp_path, capsys):
    params = {"A": 500.0, "B": 2000.0, "E": 1.8, "alpha": 0.35, "beta": 0.37}
    rows = [{"task": "wikitext", "metric": "nll_per_token", "law": "chinchilla", "param": k, "estimate": v,
             "ci_low": v, "ci_high": v} for k, v in params.items()]
    pd.DataFrame(rows).to_parquet(tmp_path / "fits.parquet")
    got, source = compute.run_fit_params(tmp_path)
    assert got == params and "wikitext" in source
    assert _cli(["compute", "--params", "1e9", "--run", str(tmp_path)]) == 0
    assert "alpha=0.35" in capsys.readouterr().out
    s = compute.summarize(1e9, fit_params=got)
    assert s.fit_params != CHINCHILLA_PAPER


def test_run_without_fit_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="harness analyze"):
        compute.run_fit_params(tmp_path)
    pd.DataFrame([{"task": "t", "metric": "acc", "law": "sigmoid", "param": "x0", "estimate": 9.0,
                   "ci_low": 8.0, "ci_high": 10.0}]).to_parquet(tmp_path / "fits.parquet")
    with pytest.raises(UserError, match="no Chinchilla"):
        compute.run_fit_params(tmp_path)


def _fit_rows(note: str, reliable=None) -> pd.DataFrame:
    params = {"A": 500.0, "B": 2000.0, "E": 1e-30, "alpha": 0.05, "beta": 0.9}
    rows = [{"task": "wiki", "metric": "nll_per_token", "law": "chinchilla", "param": k, "estimate": v,
             "ci_low": v, "ci_high": v, "note": note} for k, v in params.items()]
    frame = pd.DataFrame(rows)
    return frame if reliable is None else frame.assign(reliable=reliable)


def test_an_unreliable_run_fit_gives_no_frontier(tmp_path):
    note = "unreliable: no compute-optimal frontier; 20 (N, D) points; every size's token counts are checkpoints"
    _fit_rows(note).to_parquet(tmp_path / "fits.parquet")
    with pytest.raises(UserError, match="unreliable, so it gives no compute-optimal frontier"):
        compute.run_fit_params(tmp_path)
    params, source = compute.run_fit_params(tmp_path, allow_unreliable=True)
    assert params["beta"] == 0.9 and "UNRELIABLE: unreliable: no compute-optimal frontier" in source


def test_the_reliable_column_decides_where_the_table_has_one(tmp_path):
    _fit_rows("20 (N, D) points", reliable=False).to_parquet(tmp_path / "fits.parquet")
    with pytest.raises(UserError, match="unreliable"):
        compute.run_fit_params(tmp_path)
    _fit_rows("20 (N, D) points", reliable=True).to_parquet(tmp_path / "fits.parquet")
    assert compute.run_fit_params(tmp_path)[0]["beta"] == 0.9
    # A fits.parquet from before these checks (no column, plain note) still works.
    _fit_rows("20 (N, D) points").to_parquet(tmp_path / "fits.parquet")
    assert compute.unreliable_reason(pd.read_parquet(tmp_path / "fits.parquet")) is None
