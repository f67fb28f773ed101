"""Distillation step: loss, loop, student building, the step on both demo tasks, bad input, CLI."""
import json
import re
import subprocess
import sys

import pytest
import torch

from workbench.core import apply, config_from_dict, config_to_dict
from workbench.steps.distill.loop import kd_loss, train
from workbench.steps.distill.student import build_student, default_layer_map, save_student
from workbench.steps.distill import DistillConfig, family_of, training_callback


# ---- pure pieces: no models -------------------------------------------------------------------------------------

def test_kd_loss_matches_its_formula():
    torch.manual_seed(0)
    s, t, y = torch.randn(6, 5), torch.randn(6, 5), torch.randint(0, 5, (6,))
    ce = torch.nn.functional.cross_entropy(s, y)
    assert torch.allclose(kd_loss(s, None, y, 0.0, 3.0), ce)                       # no-KD ablation: labels only
    assert kd_loss(t, t, y, 1.0, 3.0).abs() < 1e-6                                  # student == teacher: KL is 0
    kl = torch.nn.functional.kl_div(torch.log_softmax(s / 2, -1), torch.softmax(t / 2, -1), reduction="batchmean")
    assert torch.allclose(kd_loss(s, t, y, 0.25, 2.0), 0.25 * 4 * kl + 0.75 * ce, atol=1e-6)
    unlabelled = torch.full((6,), -100)
    assert torch.allclose(kd_loss(s, t, unlabelled, 0.25, 2.0), 0.25 * 4 * kl, atol=1e-6)


def test_loop_stops_early_and_restores_the_best_weights():
    model = torch.nn.Linear(2, 1)
    scores = iter([0.5, 0.9, 0.8, 0.7, 0.6, 0.5])
    kept = {}

    def validate(m):
        score = next(scores)
        kept[score] = m.weight.detach().clone()
        return score

    batches = lambda epoch: [torch.randn(4, 2) for _ in range(3)]
    hist = train(model, batches, lambda m, x: m(x).pow(2).mean(), validate, epochs=10, steps_per_epoch=3, lr=0.1,
                 max_steps=None, patience=2, eval_every=None)
    assert hist["stopped_early"] and hist["best_val"] == 0.9 and len(hist["val"]) == 4
    assert torch.equal(model.weight, kept[0.9])


def test_config_validates_and_round_trips():
    for bad, word in [(dict(alpha=1.5), "alpha"), (dict(temperature=0), "temperature"), (dict(epochs=0), "epochs"),
                      (dict(num_layers=0), "num_layers"), (dict(lr=-1.0), "lr")]:
        with pytest.raises(ValueError, match=re.escape(word)):
            DistillConfig(**bad)
    cfg = DistillConfig.half_depth(layer_map=[0, 2])
    assert config_from_dict(config_to_dict(cfg)) == cfg and cfg.no_kd().alpha == 0.0
    assert default_layer_map(4, 2) == (0, 3) and default_layer_map(6, 3) == (0, 2, 5)


# ---- the demo classifier --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cls_task():
    from workbench.tasks import get_task

    return get_task("text-classification")


def test_student_starts_from_teacher_layers(cls_task):
    teacher = cls_task.load_model()
    student, init = build_student(teacher, 2, teacher.config.hidden_size, (1, 3))
    assert student.config.num_hidden_layers == 2 and init["init_copied_fraction"] == 1.0
    assert torch.equal(student.bert.encoder.layer[0].attention.self.query.weight,
                       teacher.bert.encoder.layer[1].attention.self.query.weight)
    narrow, init = build_student(teacher, 2, 128)
    assert narrow.config.hidden_size == 128 and narrow.config.num_attention_heads == 2  # teacher head size 64 kept
    assert narrow.config.intermediate_size == teacher.config.intermediate_size * 128 // teacher.config.hidden_size
    assert init["init_copied_fraction"] < 0.1


@pytest.mark.slow  # 104 s of CPU here: trains a student twice
def test_distill_classifier_is_deterministic_and_learns(cls_task):
    teacher = cls_task.baseline()
    events = []
    cfg = DistillConfig(epochs=1, max_steps=40, eval_every=20, batch_size=32, max_length=64, lr=5e-4)
    with training_callback(lambda *e: events.append(e)):
        student = apply(teacher, cfg)
    again = apply(teacher, cfg)
    assert student.id == again.id and student.name == "distilled-2x192"
    assert all(torch.equal(a, b) for a, b in zip(student.model.state_dict().values(), again.model.state_dict().values()))
    assert student.model.config.num_hidden_layers == 2 and student.model.config.vocab_size == teacher.model.config.vocab_size
    assert [e for e, *_ in events].count("loss") == 40 and [e for e, *_ in events].count("val") == 2
    assert student.lineage[-1][0] == "distill" and student.meta["teacher_id"] == teacher.id
    quality = cls_task.evaluate(student, limit=200)
    assert quality.value > quality.extra["majority_baseline"] + 0.2  # far above chance after 40 steps
    assert family_of(student.lineage).startswith("distill-kd-") and family_of(teacher.lineage) == "baseline"


@pytest.mark.slow  # integration-like: trains a student, quantises it and evaluates both
def test_no_kd_ablation_shares_student_and_init(cls_task):
    teacher = cls_task.baseline()
    ablation = apply(teacher, DistillConfig.tiny().no_kd())
    assert ablation.name.endswith("-nokd") and ablation.meta["layer_map"] == [0, 3]
    assert family_of(ablation.lineage).startswith("distill-nokd-")
    from workbench.steps.quantize.dynamic import QuantizeDynamicConfig

    int8 = apply(ablation, QuantizeDynamicConfig())  # distil -> quantise: one family in the results table
    assert int8.precision == "int8" and [s for s, _ in int8.lineage] == ["distill", "quantize_dynamic"]
    assert family_of(int8.lineage) == family_of(ablation.lineage)
    assert (cls_task.evaluate(int8, limit=64).value - cls_task.evaluate(ablation, limit=64).value) > -0.1


def test_bad_input_fails_before_training(cls_task, tmp_path, monkeypatch):
    import workbench.steps.distill.recipes as recipes

    monkeypatch.setattr(recipes, "train", lambda *a, **k: pytest.fail("training started on bad input"))
    teacher = cls_task.baseline()
    unlabelled = tmp_path / "unlabelled.jsonl"
    unlabelled.write_text("".join(json.dumps({"text": f"doc {i}"}) + "\n" for i in range(20)))
    with pytest.raises(ValueError, match="no 'label' column.*alpha=1.0"):
        apply(teacher, DistillConfig.tiny(train_data=str(unlabelled)))
    bad_label = tmp_path / "bad.jsonl"
    bad_label.write_text("".join(json.dumps({"text": "x", "label": "nonsense"}) + "\n" for _ in range(20)))
    with pytest.raises(ValueError, match="not one of the teacher's labels"):
        apply(teacher, DistillConfig.tiny(train_data=str(bad_label)))
    from workbench.tasks.causal_lm import DEMO_DRAFT_DIR  # a model with another tokenizer

    with pytest.raises(ValueError, match="different tokenizer"):
        apply(teacher, DistillConfig.tiny(student_dir=str(DEMO_DRAFT_DIR)))
    with pytest.raises(ValueError, match="not smaller"):
        apply(teacher, DistillConfig.tiny(num_layers=6))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        apply(teacher, DistillConfig.tiny(train_data=str(tmp_path / "missing.jsonl")))


def test_cli_bad_teacher_path_is_one_line_error(tmp_path):
    # Through workbench.cli.main (the console script's entry point): under `python -m workbench.cli` the
    # plugin verbs register on the imported module, not on __main__.
    entry = "import sys; from workbench.cli import main; sys.exit(main(sys.argv[1:]))"
    result = subprocess.run([sys.executable, "-c", entry, "distill", "--task", "text-classification",
                             "--model", str(tmp_path / "nope"), "--data", "x.jsonl"], capture_output=True, text=True)
    assert result.returncode == 2 and "does not exist" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# ---- the demo LM: token-level KD, saved student serves as a draft ---------------------------------------------------

@pytest.mark.slow  # integration-like: trains an LM student, saves it, reloads it and decodes with it
def test_distilled_lm_is_a_draft_with_the_teacher_tokenizer(tmp_path):
    from workbench.tasks import get_task
    from workbench.tasks.causal_lm import PydocLMTask

    task = get_task("causal-lm")
    teacher = task.baseline()
    student = apply(teacher, DistillConfig.lm_draft(num_layers=1, max_steps=6, eval_every=3, max_length=64,
                                                    batch_size=4))
    assert student.model.config.n_layer == 1 and student.meta["kind"] == "causal-lm"
    out = save_student(student.model, task.tokenizer, tmp_path / "draft", {"variant_id": student.id})
    sums = json.loads((out / "checksums.json").read_text())
    assert "model.safetensors" in sums and not list(tmp_path.glob(".draft.*"))  # atomic: no temp dir left
    reloaded = PydocLMTask(draft_dir=out)
    draft = reloaded.load_draft()
    assert reloaded.tokenizer.get_vocab() == task.tokenizer.get_vocab()
    prompt = task.prompts(1, 16)[0]
    plain = teacher.model.generate(prompt, max_new_tokens=8, do_sample=False)
    assisted = teacher.model.generate(prompt, max_new_tokens=8, do_sample=False, assistant_model=draft)
    assert torch.equal(plain, assisted)  # greedy speculative decoding keeps the target's output


def test_the_lm_sizing_reads_the_blocks_prepare_trains_on():
    from workbench.steps.distill import recipes
    from workbench.steps.distill.step import teacher_tokenizer
    from workbench.tasks import get_task

    teacher = get_task("causal-lm").baseline().model.eval()
    tokenizer, _ = teacher_tokenizer(teacher)
    config = DistillConfig.lm_draft(num_layers=1, max_length=64, batch_size=4)
    size = recipes.SIZE["causal-lm"]("causal-lm", teacher.config, tokenizer, config)
    job = recipes.PREPARE["causal-lm"]("causal-lm", teacher, tokenizer, config)
    assert (size.transfer, size.validation) == (job.facts["train_blocks"], job.facts["validation_blocks"])
    assert size.batch["input_ids"].shape == (4, 64) and size.teacher_scores_every_step
