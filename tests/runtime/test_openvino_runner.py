"""The OpenVINO runner: same logits as torch, thread count fixed when built, clear errors, kernel profile."""
import pytest
import torch

pytest.importorskip("openvino")

from workbench.runtime.openvino import OpenVinoRunner, bf16_capable, precision_shares  # noqa: E402


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb, self.out = torch.nn.Embedding(50, 16), torch.nn.Linear(16, 3)

    def forward(self, input_ids, attention_mask):
        h = self.emb(input_ids) * attention_mask.unsqueeze(-1)
        return self.out(h.mean(1))


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("ov") / "tiny.onnx"
    ids, mask = torch.randint(0, 50, (2, 7)), torch.ones(2, 7, dtype=torch.long)
    torch.onnx.export(Tiny().eval(), (ids, mask), str(path), input_names=["input_ids", "attention_mask"],
                      output_names=["logits"], dynamic_axes={"input_ids": {0: "b", 1: "s"}, "attention_mask": {0: "b", 1: "s"}},
                      opset_version=17, dynamo=False)
    return path


def test_logits_match_torch_and_missing_mask_is_filled(onnx_path):
    runner = OpenVinoRunner(onnx_path, threads=1)
    ids = torch.randint(0, 50, (3, 5), generator=torch.Generator().manual_seed(2))
    expected = Tiny().eval()(ids, torch.ones_like(ids))
    got = runner({"input_ids": ids, "unused": torch.zeros(1)})
    assert got.dtype == torch.float32 and got.shape == (3, 3)
    torch.testing.assert_close(got, expected.detach(), rtol=1e-4, atol=1e-5)


def test_threads_are_fixed_at_build_and_read_back(onnx_path):
    runner = OpenVinoRunner(onnx_path, threads=1)
    assert runner.threads == 1
    assert runner.with_threads(2).threads == 2 and runner.threads == 1


def test_bad_input_is_a_clear_error(onnx_path, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        OpenVinoRunner(tmp_path / "missing.xml")
    with pytest.raises(ValueError, match="precision 'fp16' unknown"):
        OpenVinoRunner(onnx_path, precision="fp16")
    with pytest.raises(ValueError, match="needs inputs"):
        OpenVinoRunner(onnx_path, threads=1)({"attention_mask": torch.ones(1, 3, dtype=torch.long)})


def test_bf16_is_refused_where_the_plugin_has_no_bf16(onnx_path):
    ok, why = bf16_capable()
    if ok:
        assert OpenVinoRunner(onnx_path, threads=1, precision="bf16").precision == "bf16"
    else:
        with pytest.raises(ValueError, match="bf16 not available here"):
            OpenVinoRunner(onnx_path, threads=1, precision="bf16")


def test_kernel_profile_shares_sum_to_one_and_group_by_precision(onnx_path):
    runner = OpenVinoRunner(onnx_path, threads=1)
    profile = runner.kernel_profile({"input_ids": torch.randint(0, 50, (2, 4))}, runs=2)
    assert abs(sum(profile.values()) - 1) < 0.01 and any("f32" in k for k in profile)
    assert precision_shares({"FullyConnected:brgemm_avx512_amx_I8": 0.6, "MVN:jit_avx512_f32": 0.3, "Input:unknown": 0.1}) \
        == {"int8": 0.6, "f32": 0.3, "other": 0.1}


def test_streams_split_the_batch_into_shaped_blocks_with_the_same_logits(onnx_path):
    from workbench.runtime.openvino import _row_blocks

    assert _row_blocks(8, 2) == [slice(0, 4), slice(4, 8)] and _row_blocks(1, 2) == [slice(0, 1)]
    assert sorted(s.stop - s.start for s in _row_blocks(5, 2)) == [2, 3]
    one, two = OpenVinoRunner(onnx_path, threads=2), OpenVinoRunner(onnx_path, threads=2, streams=2)
    for rows in (5, 1, 5):   # odd split (two block shapes), a single row on one stream, a shape seen before
        ids = torch.randint(0, 50, (rows, 6), generator=torch.Generator().manual_seed(rows))
        torch.testing.assert_close(two({"input_ids": ids}), one({"input_ids": ids}), rtol=1e-4, atol=1e-5)
    assert len(two._by_shape) == 3   # (3, 6) and (2, 6) blocks of 5 rows, (1, 6): each compiled once
    assert two.with_threads(1).streams == 1 and two.__getstate__()["streams"] == 2
    with pytest.raises(ValueError, match="streams=3 must be an integer from 1 to the thread count"):
        OpenVinoRunner(onnx_path, threads=2, streams=3)
