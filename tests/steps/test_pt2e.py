"""PT2E int8 (torchao x86 inductor quantizer + torch.compile) on a tiny BERT: int8 kernels fused, logits close to
fp32, shape buckets invisible to the caller, compile time apart, clear errors."""
import pytest
import torch

pytest.importorskip("torchao")

from workbench.core import Variant, apply  # noqa: E402
from workbench.runtime.torch_runner import TorchRunner  # noqa: E402
from workbench.steps.openvino import save_calibration_set  # noqa: E402
from workbench.steps.pt2e import Pt2eConfig  # noqa: E402

NAMES = ("input_ids", "attention_mask", "token_type_ids")


def _batch(b, s, seed):
    g = torch.Generator().manual_seed(seed)
    return {"input_ids": torch.randint(0, 500, (b, s), generator=g), "attention_mask": torch.ones(b, s, dtype=torch.long),
            "token_type_ids": torch.zeros(b, s, dtype=torch.long)}


@pytest.fixture(scope="module")
def base():
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=500, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=128, num_labels=3, max_position_embeddings=128)
    model = BertForSequenceClassification(cfg).eval()
    return Variant(name="torch-fp32", task="tiny-bert", backend="torch", device="cpu", precision="fp32",
                   runner=TorchRunner(model, "cpu", NAMES, threads=2), model=model,
                   meta={"example_inputs": _batch(8, 64, 1)})


def test_config_validation():
    with pytest.raises(ValueError, match="mode 'int4' unknown"):
        Pt2eConfig(mode="int4")
    with pytest.raises(ValueError, match="save_calibration_set"):
        Pt2eConfig(mode="static")
    with pytest.raises(ValueError, match="mode='static' only"):
        Pt2eConfig(calibration="x.npz")


@pytest.mark.slow  # integration-like: PT2E calibration, conversion and an inductor compile of the demo classifier
def test_static_int8_fuses_qlinear_and_stays_close_to_fp32(base, tmp_path):
    from torch._dynamo.utils import counters

    calib = save_calibration_set([_batch(8, 64, s) for s in range(2, 6)], tmp_path)
    counters.clear()
    int8 = apply(base, Pt2eConfig.static(calib))
    assert int8.precision == "int8" and int8.name == "torch-int8-pt2e-static"
    assert int8.meta["compile_seconds"] > 0 and int8.runner.threads == 2
    # int8 GEMMs went to oneDNN qlinear: one weight prepack per Linear (6 per layer + pooler + classifier)
    assert counters["inductor"]["qlinear_weight_prepack_matcher_count"] >= 6 * 2
    x = _batch(8, 64, 9)
    ref, got = base(x), int8(x)
    assert (got - ref).abs().max() < 0.25 * ref.abs().max() + 0.05
    assert (got.argmax(-1) == ref.argmax(-1)).float().mean() >= 0.75


@pytest.mark.slow
def test_static_int8_from_a_batch_one_example_takes_larger_calibration_batches(base, tmp_path):
    import dataclasses

    one = dataclasses.replace(base, meta={"example_inputs": _batch(1, 64, 1)})   # a batch-1 timing context
    calib = save_calibration_set([_batch(8, 64, s) for s in range(2, 4)], tmp_path)
    int8 = apply(one, Pt2eConfig.static(calib))
    x = _batch(1, 64, 9)
    got, ref = int8(x), base(x)
    assert got.shape == (1, 3) and (got - ref).abs().max() < 0.25 * ref.abs().max() + 0.05


def test_dynamic_int8_pads_to_buckets_and_cuts_the_padding_off(base):
    int8 = apply(base, Pt2eConfig.dynamic())
    x = _batch(3, 40, 4)   # runs as 8 x 64 with masked padding
    got, ref = int8(x), base(x)
    assert got.shape == (3, 3) and "8x64" in int8.runner.compile_seconds
    assert (got - ref).abs().max() < 0.25 * ref.abs().max() + 0.05


def test_a_quality_pass_runs_new_shapes_in_the_compiled_one_and_timing_compiles_them(base):
    from workbench.runtime.compiled_shapes import reuse_compiled_shapes

    int8 = apply(base, Pt2eConfig.dynamic())          # compiled at the example's 8 x 64
    x = _batch(20, 40, 5)                              # its own bucket, 24 x 64, is not compiled
    with reuse_compiled_shapes():
        chunked = int8(x)                              # 3 chunks of 8 rows, padded to 8 x 64
    assert set(int8.runner.compile_seconds) == {"8x64"} and chunked.shape == (20, 3)
    longer = _batch(4, 100, 6)                         # no compiled shape holds 100 positions: it compiles
    with reuse_compiled_shapes():
        int8(longer)
    assert "8x128" in int8.runner.compile_seconds
    exact = int8(x)                                    # outside a quality pass the batch runs as itself
    assert "24x64" in int8.runner.compile_seconds
    # the same logits up to dynamic int8's per-call activation scales (they follow the batch a row is run in):
    # the rows are independent and padded positions are masked
    assert (chunked - exact).abs().max() < 0.02 * exact.abs().max() + 0.005


def test_needs_a_torch_fp32_variant(base, tmp_path):
    bad = Variant(name="x", task="t", backend="onnxruntime", device="cpu", precision="fp32", runner=lambda x: x)
    with pytest.raises(ValueError, match="pt2e needs a torch variant"):
        apply(bad, Pt2eConfig())
