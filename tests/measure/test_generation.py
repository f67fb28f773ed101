"""Generation scenario: the speedup model, and a small real sweep over the demo target + draft."""
import json
import math

import pytest

from workbench.measure.generation import GenerationTrial, break_even_alpha, measure_generation, predicted_speedup
from workbench.results import ResultsTable
from workbench.tasks.causal_lm import DEMO_DRAFT_DIR, DEMO_TARGET_DIR


def test_predicted_speedup_limits_and_break_even():
    assert predicted_speedup(0.0, 4, 0.1) == pytest.approx(1 / 1.4)            # every draft rejected: pure overhead
    assert predicted_speedup(1.0, 4, 0.1) == pytest.approx(5 / 1.4)            # every draft kept
    assert predicted_speedup(0.5, 1, 0.0) == pytest.approx(1.5)
    for gamma, c in [(1, 0.1), (4, 0.2), (8, 0.05)]:
        a = break_even_alpha(gamma, c)
        assert 0 < a < 1 and predicted_speedup(a, gamma, c) == pytest.approx(1.0, abs=1e-6)
    assert math.isnan(break_even_alpha(4, 1.5))   # a draft dearer than the target never pays off


def test_trial_rejects_bad_settings():
    with pytest.raises(ValueError, match="gamma"):
        GenerationTrial(gammas=(0, 2))
    with pytest.raises(ValueError, match="drafters"):
        GenerationTrial(drafters=("medusa",))
    with pytest.raises(ValueError, match="temperature"):
        GenerationTrial(temperatures=(-1.0,))


@pytest.mark.skipif(not (DEMO_TARGET_DIR / "config.json").exists() or not (DEMO_DRAFT_DIR / "config.json").exists(),
                    reason="demo LMs not trained yet (python -m workbench.assets.train_demo_models --only lm)")
def test_small_sweep_on_demo_pair_writes_rows(tmp_path):
    from workbench.tasks import get_task

    task = get_task("causal-lm")
    table = ResultsTable(tmp_path / "results.jsonl")
    trial = GenerationTrial(gammas=(1, 3), temperatures=(0.0, 1.0), n_prompts=2, prompt_tokens=16, max_new_tokens=16)
    rows = measure_generation(task, trial, table=table, progress=False)
    saved = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert len(saved) == len(rows) == 2 + 2 * 2 * 2 + 1   # plain per temperature, spec arms, kv-cache off
    plain = [r for r in rows if r["scenario"] == "generation-plain"]
    assert {(r["kv_cache"], r["temperature"]) for r in plain} == {(True, 0.0), (True, 1.0), (False, 0.0)}
    for row in (r for r in rows if r["scenario"] == "generation-speculative"):
        assert 0 <= row["alpha"] <= 1 and row["c"] > 0 and row["tokens_per_s"] > 0
        assert len(row["accept_hist"]) == row["gamma"] + 1 and sum(row["accept_hist"]) == row["target_calls"]
        assert row["tokens_per_target_call"] == pytest.approx(1 + row["mean_accepted_per_call"], abs=1e-3)
        assert row["predicted_speedup"] > 0 and 0 <= row["break_even_alpha"] <= 1
        # greedy must reproduce the target's own output; sampling has no such check
        assert row["identical"] is (True if row["temperature"] == 0 else None)
