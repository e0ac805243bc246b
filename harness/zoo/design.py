"""Which token budgets each size of a WSD ladder trains: an IsoFLOP design.

Chinchilla's Approach 2 (Hoffmann et al. 2022, section 3.2) trains several sizes at each of a few
fixed compute budgets C = 6 N D and reads the compute-optimal size off each budget's profile. A grid
that gives every size the same token budgets puts almost no two sizes at the same C when the sizes
are not powers of the budgets' ratio, so it has no profiles; and it spends its longest runs on the
smallest sizes, far past any compute-optimal point. Here every size trains the budgets that put it
on a shared ladder of compute levels (a quarter decade apart), within a range of steps, so each level
that three or more sizes reach is a profile. With warmup-stable-decay a budget costs only its
cooldown (train.py), so a size can take many. One budget is shared by every size (`shared_steps`):
the sizes compared at equal tokens, where the few-shot tasks are scored.

Pure arithmetic: no torch.
"""
from __future__ import annotations

from dataclasses import dataclass


def nonembedding_params(d_model: int, n_layers: int, d_ffn: int) -> int:
    """Non-embedding parameters of the zoo's Llama (train.make_model): per layer four d x d attention
    matrices (no biases, as many key/value heads as query heads), three d x ffn SwiGLU matrices and
    two RMSNorm gains; plus the final norm. The tied embedding is the only other weight.

    >>> nonembedding_params(16, 1, 64)  # zoo-1's harness.json says 4,144
    4144
    """
    per_layer = 4 * d_model * d_model + 3 * d_model * d_ffn + 2 * d_model
    return n_layers * per_layer + d_model


@dataclass(frozen=True)
class IsoflopDesign:
    """Compute levels 10^first, 10^(first + step), ... 10^last FLOPs (C = 6 N D, N non-embedding);
    each size takes the levels whose budget in steps lies within [min_steps, max_steps], plus
    `shared_steps`."""

    first_log10_flops: float = 10.0
    last_log10_flops: float = 13.0
    step_log10: float = 0.25
    min_steps: int = 128  # the 50-step warm-up stays under 40% of the shortest run
    max_steps: int = 12288  # what 2 CPU cores train within the build's 30 minutes (zoo/README.md)
    shared_steps: int = 4096

    def levels(self) -> tuple[float, ...]:
        count = round((self.last_log10_flops - self.first_log10_flops) / self.step_log10) + 1
        return tuple(10 ** (self.first_log10_flops + k * self.step_log10) for k in range(count))

    def budgets(self, n_nonembedding: int, tokens_per_step: int) -> tuple[int, ...]:
        """The size's budgets in steps, ascending: one per compute level it reaches, and the shared one.

        >>> IsoflopDesign().budgets(4144, 2048)  # zoo-1: levels 10^10 .. 10^11.75
        (196, 349, 621, 1104, 1964, 3492, 4096, 6210, 11043)
        """
        per_step = 6 * n_nonembedding * tokens_per_step
        steps = {round(c / per_step) for c in self.levels()}
        return tuple(sorted({s for s in steps if self.min_steps <= s <= self.max_steps} | {self.shared_steps}))

    def size_budgets(self, size: dict, tokens_per_step: int) -> tuple[int, ...]:
        """`budgets` of a ladder size given as SizeSpec kwargs (d_model, n_layers, d_ffn, ...)."""
        return self.budgets(nonembedding_params(size["d_model"], size["n_layers"], size["d_ffn"]), tokens_per_step)
