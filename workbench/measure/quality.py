"""Quality of one variant against another on the same data: top-1 agreement of their logits, and the paired
perplexity change of a decoder (both variants on the same token blocks, the blocks resampled together).

The statistics themselves (bootstrap intervals, paired differences, "no measurable loss") are
:mod:`workbench.util.stats`: tasks compute their metric's CI with them, below measurement.
"""
from __future__ import annotations

import numpy as np
import torch

from workbench.core import Variant
from workbench.util.stats import measurable, paired_bootstrap_ratio


def top1_agreement(logits_a, logits_b) -> float:
    """Share of positions where two variants pick the same argmax (task-level agreement)."""
    a = np.asarray(logits_a).argmax(-1)
    b = np.asarray(logits_b).argmax(-1)
    return float((a == b).mean())


def paired_perplexity(task, parent: Variant, child: Variant, split: str = "test", limit: int | None = None,
                      batch_size: int = 16) -> dict:
    """Perplexity of ``child`` against ``parent`` on the same token blocks: both values and the relative increase
    (%) with a paired bootstrap 95% CI over blocks (each block's NLL sum resampled together for both)."""
    from workbench.tasks.causal_lm import block_nll

    blocks = task.token_blocks(split)[:limit]
    pairs = {}
    for key, variant in (("parent", parent), ("child", child)):
        nll = torch.cat([block_nll(torch.as_tensor(variant({"input_ids": c})), c)[0] for c in blocks.split(batch_size)])
        pairs[key] = np.stack([nll.double().numpy(), np.full(len(nll), blocks.shape[1] - 1.0)], axis=1)

    def ppl(p):
        return float(np.exp(p[:, 0].sum() / p[:, 1].sum()))

    ratio, low, high = paired_bootstrap_ratio(pairs["child"], pairs["parent"], statistic=ppl)
    return {"parent_perplexity": round(ppl(pairs["parent"]), 4), "perplexity": round(ppl(pairs["child"]), 4),
            "ppl_increase_pct": round(100 * (ratio - 1), 3),
            "ppl_increase_ci_pct": [round(100 * (low - 1), 3), round(100 * (high - 1), 3)],
            "ppl_change_measurable": measurable(low - 1, high - 1), "n_blocks": int(len(blocks))}


__all__ = ["top1_agreement", "paired_perplexity"]
