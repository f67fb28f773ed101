"""The distilled arms: the teacher baseline, the KD student and the student stacked with each CPU arm (same names
prefixed, same skip reasons), the student trained once per run, every arm's quality paired against the teacher."""
import pytest

from workbench.arms.cpu import cpu_arms
from workbench.arms.distilled import PREFIX, STUDENT, TEACHER, student_arms, training_seconds_estimate
from workbench.runtime.cpu import isa_summary

AVX2 = ["avx2", "fma"]
AVX512_VNNI = ["avx2", "fma", "avx512f", "avx512_vnni"]
TINY = dict(num_layers=1, epochs=1, max_steps=4, batch_size=8, max_length=32, extra_data=None)


@pytest.fixture(scope="module")
def transfer_file(tmp_path_factory):
    """60 labelled demo texts as a user's transfer file: 55 train, 5 validation (steps.distill.data's hold-out),
    so a student trains in seconds even on a loaded CPU."""
    import json

    from workbench.tasks.demo_data import docstring_split

    texts, labels = docstring_split("train")
    path = tmp_path_factory.mktemp("transfer") / "transfer.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in zip(texts[:60], labels[:60])))
    return str(path)


def test_student_arms_mirror_the_cpu_catalogue_with_its_skip_reasons():
    isa = isa_summary(AVX2)
    arms = student_arms(isa, calibration=None, num_layers=2)
    cpu = [a for a in cpu_arms(isa) if not a.baseline]
    assert [a.name for a in arms] == [TEACHER, STUDENT] + [PREFIX + a.name for a in cpu]
    assert [a.name for a in arms if a.baseline] == [TEACHER] and arms[1].kind == "distill" and arms[1].applies
    for arm, source in zip(arms[2:], cpu):
        assert arm.kind == source.kind and arm.skip_reason == source.skip_reason and arm.steps == source.steps
    by_name = {a.name: a for a in arms}
    # AVX2 only: bf16 arms skipped with the ISA fact; static int8 arms with the missing calibration set
    assert "no AMX/AVX512-BF16" in by_name["student+ov-bf16"].skip_reason
    assert "needs calibration data" in by_name["student+ov-int8-static"].skip_reason
    assert by_name["student+torch-int8-dynamic"].applies
    vnni = {a.name: a for a in student_arms(isa_summary(AVX512_VNNI), calibration="c.npz")}
    assert vnni["student+ov-int8-static"].config.calibration == "c.npz"
    assert {a.build.config.num_layers for a in arms[1:]} == {2}                  # one recipe for every student arm
    # a compile arm's eager twin is the student's own: the eager student for fp32, student+<twin> otherwise
    assert by_name["student+torch-compile-fp32"].twin == STUDENT
    assert by_name["student+torch-compile-bf16"].twin == "student+torch-bf16"


def test_student_arms_reject_a_bad_recipe_before_training():
    with pytest.raises(ValueError, match="alpha"):
        student_arms(isa_summary(AVX2), alpha=2.0)


@pytest.mark.slow
def test_student_trained_once_stacked_and_paired_against_the_teacher(tmp_path, monkeypatch, transfer_file):
    from workbench.arms.distill_study import run
    from workbench.steps.distill import training_callback

    monkeypatch.setenv("WORKBENCH_ARTIFACTS", str(tmp_path))
    starts = []
    with training_callback(lambda event, step, value: starts.append(step) if event == "loss" and step == 1 else None):
        study = run("text-classification", batch=1, seq=32, threads=1, max_drop=100.0, ablation=True,
                    eval_limit=40, calib_examples=0, only=["student+torch-int8-dynamic", "student+ov-int8-static"],
                    rounds=1, seconds=None, isa=isa_summary(AVX512_VNNI), train_data=transfer_file, **TINY)
    study.close()
    result = study.result
    # one KD student for both student arms, plus the no-KD ablation: two trainings in all
    assert len(starts) == 2
    rows = {r["arm"]: r for r in result.rows}
    assert rows["student+ov-int8-static"]["status"] == "not available here"
    assert "needs calibration data" in rows["student+ov-int8-static"]["reason"]
    assert rows["student+ov-fp32"]["status"] == "skipped"
    stacked = result.built["student+torch-int8-dynamic"].variant
    student = result.built[STUDENT].variant
    assert [step for step, _ in stacked.lineage] == ["distill", "quantize_dynamic"]
    assert stacked.parent_id == student.id
    assert rows[STUDENT]["family"] == rows["student+torch-int8-dynamic"]["family"] != "baseline"
    # quality of every arm paired against the teacher on the same 40 test examples: drop = teacher - arm, in points
    teacher_q, base = result.reports[TEACHER], rows[TEACHER]
    for name in (STUDENT, "student+torch-int8-dynamic"):
        q = result.reports[name]
        assert q.n_examples == teacher_q.n_examples == 40
        assert rows[name]["report_drop_pts"] == pytest.approx(100 * (teacher_q.value - q.value), abs=1e-3)
        low, high = rows[name]["report_drop_ci_pts"]
        assert low <= rows[name]["report_drop_pts"] <= high
        assert rows[name]["quality_n"] == base["quality_n"]             # selection split, paired too
    s = study.summary
    assert s["stacked_arm"] in (TEACHER, STUDENT, "student+torch-int8-dynamic") and s["pick_checked"]
    assert s["student_retention"] == pytest.approx(result.reports[STUDENT].value / teacher_q.value, abs=1e-3)
    assert s["stacked_speedup"] == result.confirmed_speedup and s["tolerance_pts"] == 100.0
    assert s["kd_minus_nokd_pts"] == pytest.approx(100 * (result.reports[STUDENT].value - s["nokd_accuracy"]),
                                                   abs=0.01)
    table_rows = {r["arm"]: r for r in study.rows}
    assert set(table_rows) == {TEACHER, STUDENT, "student+torch-int8-dynamic"}
    assert table_rows[STUDENT]["retention"] == s["student_retention"]
    assert table_rows[STUDENT]["distill_seconds"] is not None and table_rows[TEACHER]["family"] == "baseline"


def test_retention_tolerance_is_the_drop_that_keeps_the_retention():
    from types import SimpleNamespace

    from workbench.arms.distill_study import retention_tolerance
    from workbench.tasks.base import QualityResult

    task = SimpleNamespace(evaluate=lambda variant, split, limit: QualityResult("accuracy", 0.85, 0.8, 0.9, 100))
    ctx = SimpleNamespace(task=task, base=None, options={})
    assert retention_tolerance(ctx, 0.96) == pytest.approx(3.4)
    with pytest.raises(ValueError, match="fraction"):
        retention_tolerance(ctx, 96)


def test_training_seconds_estimate_is_scoring_plus_steps_plus_validations(monkeypatch, transfer_file):
    from workbench.arms import distilled

    tiny = {**TINY, "train_data": transfer_file}             # 55 train texts, 5 validation, 7 batches of 8 an epoch
    assert training_seconds_estimate("text-classification", **tiny) > 0          # measured here, in seconds
    # every timed batch of 8 "takes" 1 s: 1/8 s per example for teacher scoring, a training step and validation
    monkeypatch.setattr(distilled, "_median_seconds", lambda fn, calls=2: (fn(), 1.0)[1])
    labels_only = {**tiny, "alpha": 0.0}                      # no teacher scoring
    # 2 steps x 8 examples + (1 epoch + final) validations x 5 examples, at 1/8 s each
    assert training_seconds_estimate("text-classification", **{**labels_only, "max_steps": 2}) == round(2 + 10 / 8, 1)
    # max_steps 400 but 3 epochs of 7 batches: 21 steps, 3 + 1 validations
    assert training_seconds_estimate("text-classification", **{**labels_only, "max_steps": 400, "epochs": 3}) == 23.5
    # KD: the teacher also scores the 55 transfer texts, once
    assert training_seconds_estimate("text-classification", **{**tiny, "max_steps": 2}) == round(2 + 10 / 8 + 55 / 8, 1)
