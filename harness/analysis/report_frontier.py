"""The "Compute-optimal frontier" section of report.md, read from fits.parquet alone.

Per L(N, D) fit: when reliable, the Approach 3 parameters with intervals, the residual-trend
numbers, the frontier exponents and the tokens-per-parameter ratio beside Hoffmann et al. 2022's,
Approach 2's exponent, and what the ladder's choices do to them (Porian et al. 2024). When
unreliable, one line that says why Approach 3 gives no frontier, then Approach 2's exponent alone
where its IsoFLOP profiles give one (it assumes no law in N and D). The comparisons are computed from the numbers
(an interval includes 0.5 or does not), never asserted.
"""
from __future__ import annotations

import numpy as np

from harness.analysis.answers import num, table
from harness.analysis.fit.residuals import (MAX_P_GROUPS, MAX_P_INTERACTION, MAX_P_RHO, MIN_EPS2, MIN_RHO,
                                            MIN_SHARE)
from harness.analysis.frontier import CHINCHILLA_FLOPS, FRONTIER_LAW, ISOFLOP_LAW, RESIDUALS_LAW

# Hoffmann et al. 2022, Table 2: N_opt ∝ C^a by Approach 1, 2, 3 (Approach 2's interval as published).
PAPER_A = {"1": 0.50, "2": 0.49, "3": 0.46}
PAPER_A2_INTERVAL = (0.462, 0.534)
PAPER_TOKENS_PER_PARAM = 20.0  # Chinchilla: 1.4e12 tokens for 70e9 parameters

CHOICES = (
    "What the ladder's choices do to these numbers. Sizes here are non-embedding parameters and C = 6ND "
    "counts only their FLOPs, as Kaplan et al. 2020 counted; Hoffmann et al. count every parameter. Porian et "
    "al. 2024 trace the gap between Kaplan's exponent (0.73) and Hoffmann's (about 0.5) to three choices: "
    "leaving the last layer's FLOPs out of C (a large share of a small model's compute), a warmup too long "
    "for the smallest budgets, and optimiser settings (AdamW β2, batch size, learning rate) not tuned per "
    "size; each correction moved their exponent towards Hoffmann's, and a cosine decay matched to each run's "
    "length turned out not to be essential. Read against this: on a ladder of small models the "
    "non-embedding count and a fixed warmup push a above 0.5, towards Kaplan's, so before comparing with "
    "Chinchilla, refit with N counting the embedding and output layer (and C their FLOPs), and check that "
    "no run spends a large fraction of its tokens in warmup. Each (N, D) point must be a finished "
    "run, its learning rate decayed at D (a WSD cooldown, Hägele et al. 2024, gives one per budget from a "
    "shared stable phase); a checkpoint taken mid-schedule is not, and its loss sits above the law.")


def frontier_section(fits) -> list[str]:
    """The section's lines; [] when the run has no L(N, D) fit."""
    sub = fits[fits["law"] == "chinchilla"]
    if sub.empty:
        return []
    out = ["## Compute-optimal frontier", ""]
    for (task, metric), g in sub.groupby(["task", "metric"]):
        mine = fits[(fits["task"] == task) & (fits["metric"] == metric)]
        if not bool(g["reliable"].all()):
            out += _unreliable_fit(task, metric, g, mine)
            continue
        out += _reliable_fit(task, metric, g, mine)
    return out


def compute_optimal_answers(fits) -> list[str]:
    """One line per L(N, D) fit for the report's answers: the frontier, by which approach, and why
    not the other."""
    out = []
    for (task, metric), g in fits[fits["law"] == "chinchilla"].groupby(["task", "metric"]):
        mine = fits[(fits["task"] == task) & (fits["metric"] == metric)]
        fr, iso = _rows(mine, FRONTIER_LAW), _rows(mine, ISOFLOP_LAW)
        law = (f"the L(N, D) law holds (R² {num(g['r2'].iloc[0])})" if bool(g["reliable"].all())
               else f"the L(N, D) law is unreliable (R² {num(g['r2'].iloc[0])}), so it gives no frontier")
        found = []
        if "a" in fr:
            found.append(f"N_opt ∝ C^{num(fr['a'].estimate)} {_ci(fr['a'])} by the law (Approach 3)")
        if "a" in iso:
            said = f"N_opt ∝ C^{num(iso['a'].estimate)} {_ci(iso['a'])} by {int(iso['a'].n_points)} IsoFLOP profiles"
            if "tokens_per_param_at_C_mid" in iso:
                r = iso["tokens_per_param_at_C_mid"]
                said += f", {num(r.estimate)} {_ci(r)} tokens per parameter at {iso['C_mid'].estimate:.3g} FLOPs"
            found.append(said + " (Approach 2)")
        verdict = "; ".join(found) if found else "no compute-optimal frontier"
        out.append(f"- **{task}** / {metric}, compute-optimal: {verdict}; {law}. See \"Compute-optimal frontier\".")
    return out


def _unreliable_fit(task: str, metric: str, law_rows, mine) -> list[str]:
    iso, note = _rows(mine, ISOFLOP_LAW), law_rows["note"].iloc[0]
    why_not_2 = ("its points are checkpoints of one run, not runs of their own" if "one run" in note
                 else "fewer than 2 IsoFLOP profiles have a minimum inside their sizes")
    out = [f"- {task}/{metric}: the L(N, D) fit is unreliable ({note}), so Approach 3 gives no frontier"
           + ("." if iso else f"; and {why_not_2}, so Approach 2 gives none either."), ""]
    out += _residual_lines(_rows(mine, RESIDUALS_LAW)) + [""]
    if not iso:
        return out
    level = f"{100 * float(law_rows.iloc[0].ci_level):.0f}%"
    out += [f"Approach 2 needs no law in N and D, only a parabola in log N near each profile's minimum, and "
            f"every point a finished run of its own. {iso['a'].note}.", ""]
    out += _frontier_table({}, iso, level) + _comparison({}, iso) + ["", CHOICES, ""]
    return out


def _rows(frame, law: str) -> dict:
    return {r.param: r for r in frame[frame["law"] == law].itertuples()}


def _ci(r) -> str:
    return f"[{num(r.ci_low)}, {num(r.ci_high)}]" if np.isfinite(r.ci_low) else "(no interval)"


def _reliable_fit(task: str, metric: str, law_rows, mine) -> list[str]:
    fit = _rows(law_rows, "chinchilla")
    first = law_rows.iloc[0]
    level = f"{100 * float(first.ci_level):.0f}%"
    params = [[k, num(fit[k].estimate), _ci(fit[k])] for k in ("E", "A", "B", "alpha", "beta") if k in fit]
    intervals = f"Intervals: {level}, {first.ci_method}." if first.ci_method != "none" else "No intervals (no resamples)."
    out = [f"### {task} / {metric}", "",
           f"Approach 3, L = E + A / N^alpha + B / D^beta, on {int(first.n_points)} (N, D) points: "
           f"R² {num(first.r2)}. {intervals}", ""]
    out += table(["param", "estimate", f"{level} CI"], params)
    out += _residual_lines(_rows(mine, RESIDUALS_LAW)) + [""]
    out += _frontier_table(_rows(mine, FRONTIER_LAW), _rows(mine, ISOFLOP_LAW), level)
    out += _comparison(_rows(mine, FRONTIER_LAW), _rows(mine, ISOFLOP_LAW)) + ["", CHOICES, ""]
    return out


def _residual_lines(res: dict) -> list[str]:
    if not res:
        return []
    parts = []
    for v in ("N", "D"):
        if f"spearman_rho_{v}" not in res:
            continue
        parts.append(f"against log {v}: Spearman ρ {res[f'spearman_rho_{v}'].estimate:+.2f} "
                     f"(p {res[f'spearman_p_{v}'].estimate:.2g}), Kruskal-Wallis ε² "
                     f"{res[f'kruskal_eps2_{v}'].estimate:.2f} (p {res[f'kruskal_p_{v}'].estimate:.2g}); "
                     f"{res[f'spearman_rho_{v}'].note}")
    if "interaction_p" in res:
        parts.append(f"per-size slopes in D against one shared slope: F {res['interaction_f'].estimate:.3g} "
                     f"(p {res['interaction_p'].estimate:.2g}; they explain {100 * res['interaction_share'].estimate:.0f}% "
                     f"of what one slope leaves); {res['interaction_p'].note}")
    rule = (f"a trend counts at |ρ| > {MIN_RHO} with p < {MAX_P_RHO}, or ε² > {MIN_EPS2} with p < {MAX_P_GROUPS}, "
            "and a spread of the groups' median residuals above 1e-3; an interaction at p < "
            f"{MAX_P_INTERACTION} with a share above {MIN_SHARE:.0%}")
    return [f"Log residuals (plot: `*_isoflop.png`), {'; '.join(parts)}. Rule: {rule}."]


def _frontier_table(fr: dict, iso: dict, level: str) -> list[str]:
    rows = []
    if "a" in fr:
        rows.append(["a: N_opt ∝ C^a (Approach 3)", f"{num(fr['a'].estimate)} {_ci(fr['a'])}",
                     f"{PAPER_A['3']:.2f} (Approach 3); {PAPER_A['1']:.2f} and {PAPER_A['2']:.2f} (Approaches 1, 2)"])
        rows.append(["b: D_opt ∝ C^b (Approach 3)", f"{num(fr['b'].estimate)} {_ci(fr['b'])}",
                     f"{1 - PAPER_A['3']:.2f} (Approach 3); about 0.5"])
    if "a" in iso:
        rows.append([f"a by Approach 2 ({int(iso['a'].n_points)} IsoFLOP profiles)",
                     f"{num(iso['a'].estimate)} {_ci(iso['a'])}",
                     f"{PAPER_A['2']} [{PAPER_A2_INTERVAL[0]}, {PAPER_A2_INTERVAL[1]}]"])
    if "tokens_per_param_at_C_mid" in iso:
        c = iso["C_mid"].estimate
        rows.append(["b by Approach 2 (1 − a)", f"{num(iso['b'].estimate)} {_ci(iso['b'])}", f"{1 - PAPER_A['2']:.2f}"])
        rows.append([f"N_opt at C = {c:.3g} (Approach 2, the profiles' middle)",
                     f"{num(iso['N_opt_at_C_mid'].estimate)} {_ci(iso['N_opt_at_C_mid'])}", "–"])
        rows.append([f"D_opt / N_opt at C = {c:.3g} (Approach 2)", f"{num(iso['tokens_per_param_at_C_mid'].estimate)} "
                     f"{_ci(iso['tokens_per_param_at_C_mid'])}", f"~{PAPER_TOKENS_PER_PARAM:g} (at {CHINCHILLA_FLOPS:.3g})"])
    if "tokens_per_param_at_C_ladder" in fr:
        c = fr["C_ladder"].estimate
        rows.append([f"N_opt at C = {c:.3g} (the ladder's geometric middle)",
                     f"{num(fr['N_opt_at_C_ladder'].estimate)} {_ci(fr['N_opt_at_C_ladder'])}", "–"])
        rows.append([f"D_opt / N_opt at C = {c:.3g}", f"{num(fr['tokens_per_param_at_C_ladder'].estimate)} "
                     f"{_ci(fr['tokens_per_param_at_C_ladder'])}", f"~{PAPER_TOKENS_PER_PARAM:g} (at {CHINCHILLA_FLOPS:.3g})"])
        rows.append([f"D_opt / N_opt at C = {CHINCHILLA_FLOPS:.3g} (Chinchilla's budget; extrapolated)",
                     f"{num(fr['tokens_per_param_at_C_chinchilla'].estimate)} "
                     f"{_ci(fr['tokens_per_param_at_C_chinchilla'])}", f"~{PAPER_TOKENS_PER_PARAM:g}"])
    return table(["quantity", f"this ladder [{level} CI]", "Hoffmann et al. 2022"], rows)


def _comparison(fr: dict, iso: dict) -> list[str]:
    """Plain sentences computed from the intervals: does each include Chinchilla's value?"""
    out = []
    if "a" in fr:
        out.append(f"- Approach 3's a {_against(fr['a'], 0.5)} 0.5 (equal scaling of N and D).")
    if "a" in iso and "a" not in fr:
        out.append(f"- Approach 2's a {_against(iso['a'], 0.5)} 0.5 (equal scaling of N and D).")
        if "tokens_per_param_at_C_mid" in iso:
            out.append(f"- Approach 2's tokens-per-parameter ratio at C = {iso['C_mid'].estimate:.3g} "
                       f"{_against(iso['tokens_per_param_at_C_mid'], PAPER_TOKENS_PER_PARAM)} "
                       f"{PAPER_TOKENS_PER_PARAM:g}; Hoffmann et al.'s ~20 was measured at a far larger C, and "
                       "counts every parameter, so a different value here is not a contradiction.")
    elif "a" in iso:
        overlap = _overlap(fr.get("a"), iso["a"])
        said = {True: "overlap", False: "do not overlap", None: "cannot be compared (an interval is missing)"}
        out.append(f"- Approach 2's a {_against(iso['a'], 0.5)} 0.5; the two approaches' intervals {said[overlap]}.")
    else:
        out.append("- Approach 2: fewer than 2 IsoFLOP profiles with a minimum inside their sizes, no exponent.")
    if "tokens_per_param_at_C_ladder" in fr:
        out.append(f"- The tokens-per-parameter ratio at the ladder's compute "
                   f"{_against(fr['tokens_per_param_at_C_ladder'], PAPER_TOKENS_PER_PARAM)} "
                   f"{PAPER_TOKENS_PER_PARAM:g}. The ratio moves with C as C^(b − a); Hoffmann et al.'s ~20 "
                   "was measured at a far larger C, so a different value at this scale is not a contradiction.")
    return out


def _against(r, value: float) -> str:
    if not (np.isfinite(r.ci_low) and np.isfinite(r.ci_high)):
        return f"is {num(r.estimate)} (no interval) against"
    inside = r.ci_low <= value <= r.ci_high
    return "has an interval that includes" if inside else "has an interval that excludes"


def _overlap(r1, r2) -> bool | None:
    """Whether two intervals overlap; None when either is missing."""
    if r1 is None or not np.isfinite([r1.ci_low, r1.ci_high, r2.ci_low, r2.ci_high]).all():
        return None
    return bool(max(r1.ci_low, r2.ci_low) <= min(r1.ci_high, r2.ci_high))
