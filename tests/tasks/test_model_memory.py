"""Sizing a checkpoint from its safetensors headers and refusing, before loading, what cannot fit."""
import json

import pytest
import torch
from safetensors.torch import save_file

from workbench.tasks import model_memory as mm


def test_header_gives_exact_parameter_count_and_stored_bytes(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    save_file({"a": torch.zeros(3, 5), "b": torch.zeros(7, dtype=torch.bfloat16)}, str(tmp_path / "model-1.safetensors"))
    save_file({"c": torch.zeros(2, 2, 2, dtype=torch.int8)}, str(tmp_path / "model-2.safetensors"))
    assert mm.checkpoint_numel(tmp_path) == (15 + 7 + 8, 15 * 4 + 7 * 2 + 8)
    assert mm.parameter_count(tmp_path) == 30


def test_header_is_read_without_the_weights(tmp_path):
    # A file cut off right after its header still sizes: only the header bytes are read.
    path = tmp_path / "w.safetensors"
    save_file({"w": torch.zeros(1000, 1000)}, str(path))
    data = path.read_bytes()
    header_len = int.from_bytes(data[:8], "little")
    path.write_bytes(data[:8 + header_len])
    assert mm.read_safetensors_header(path)["w"]["shape"] == [1000, 1000]


def test_config_estimate_when_no_safetensors(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(
        {"hidden_size": 4096, "num_hidden_layers": 32, "vocab_size": 32000, "intermediate_size": 11008,
         "tie_word_embeddings": False}))
    # Llama-2-7B has 6.74B parameters; the shape formula lands within 5% of it.
    assert mm.parameter_count(tmp_path) == pytest.approx(6.74e9, rel=0.05)


def test_message_names_sizes_free_memory_and_what_fits():
    seven_b = 7_000_000_000
    msg = mm.fit_message(seven_b, "fp32", int(20e9), "cpu")
    assert "needs 30.8 GB in fp32, 15.4 GB in bf16, 7.7 GB in int8" in msg
    assert "20.0 GB free on cpu" in msg and "try dtype=bf16" in msg
    assert "try dtype=int8" in mm.fit_message(seven_b, "bf16", int(9.8e9), "cuda")
    assert "more memory" in mm.fit_message(seven_b, "fp32", int(1e9), "cpu")
    assert mm.fit_message(seven_b, "bf16", int(16e9), "cpu") is None


def test_check_fits_raises_before_loading(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    save_file({"w": torch.zeros(1000, 1000)}, str(tmp_path / "model.safetensors"))
    assert mm.check_fits(tmp_path, "fp32", "cpu", free=int(1e9)) == int(4e6 * 1.1)
    with pytest.raises(MemoryError, match=r"0.00B parameters: needs 0.0 GB in fp32.*0.0 GB free on cpu"):
        mm.check_fits(tmp_path, "fp32", "cpu", free=1000)
    assert mm.free_bytes("cpu") > 0
