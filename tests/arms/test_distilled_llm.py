"""The LM student arms: the causal LM's KD student through the LLM decode arms (same names prefixed, same skip
reasons), trained once per run, built on a context of its own that reads the run's current quality blocks."""
import dataclasses

import pytest

from workbench.arms.distilled import PREFIX
from workbench.arms.distilled_llm import lm_student_arms, lm_student_config
from workbench.arms.llm import BASELINE, llm_arms

TINY = dict(num_layers=1, max_steps=4, eval_every=2, batch_size=4, max_length=32)


def test_student_arms_mirror_the_decode_catalogue():
    arms = lm_student_arms(compile=False, **TINY)
    source = llm_arms(compile=False)
    assert [a.name for a in arms] == [PREFIX + a.name for a in source] and not any(a.baseline for a in arms)
    by = {a.name: a for a in arms}
    assert by[PREFIX + BASELINE].kind == "distill"                    # the plain student is a candidate, not a baseline
    for arm, src in zip(arms[1:], source[1:]):
        assert arm.kind == src.kind and arm.skip_reason == src.skip_reason and arm.records
    assert "--no-compile" in by[PREFIX + "hf-static-compile-fp32"].skip_reason
    assert {a.build.config for a in arms} == {lm_student_config(**TINY)}   # one recipe, so one student per run
    assert lm_student_config().max_steps == 300 and lm_student_config().num_layers is None   # half depth, capped


def test_engine_spec_of_a_student_arm_is_its_source_arms():
    from workbench.optimize.engine_handoff import engine_spec

    assert engine_spec(PREFIX + "fast-loop-int4-wo") == engine_spec("fast-loop-int4-wo") == ("int4-wo", None)
    assert engine_spec(PREFIX + "nonsense")[0] == "baseline"


@pytest.mark.slow   # trains a 1-layer student of the demo LM for 4 steps (seconds) and builds two arms on it
def test_student_trained_once_on_its_own_context_reading_the_runs_quality_blocks():
    from workbench.arms.llm import decode_context
    from workbench.steps.distill import training_callback
    from workbench.tasks import get_task

    task = get_task("causal-lm")
    ctx = decode_context(task.baseline().model, prompt=8, new=4, compile=False, quality="perplexity", task=task,
                         threads=1, ppl_blocks=3)
    by = {a.name: a for a in lm_student_arms(compile=False, **TINY)}
    starts = []
    with training_callback(lambda event, step, value: starts.append(step) if event == "loss" and step == 1 else None):
        plain = by[PREFIX + BASELINE].build(ctx)
        int8 = by[PREFIX + "hf-int8-wo"].build(ctx)
    assert starts == [1]                                              # one student for both arms
    assert plain.meta["student_layers"] == 1 and plain.meta["family"].startswith("distill-kd-")
    assert "int8" not in ctx.cache                                    # the student's int8 copy lives in its own cache
    result = plain.call()
    assert result.tokens.shape == (1, 12)
    teacher_ppl = llm_arms(compile=False)[0].build(ctx).quality()
    q = plain.quality()
    assert q.metric == "perplexity" and q.n_examples == 3 and q.value > teacher_ppl.value   # 4 steps: a worse LM
    assert int8.quality().value != q.value                            # the int8 weights were scored, not fp32's
    ctx.options["quality_ids"] = ctx.options["quality_ids"][:2]       # the run now scores other blocks (test split)
    assert plain.quality().n_examples == 2
    with pytest.raises(ValueError, match="needs the context's task"):
        by[PREFIX + BASELINE].build(dataclasses.replace(ctx, task=None, cache={}))
