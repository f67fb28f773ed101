"""Loading local HF directories: safetensors only unless opted in, the dtype asked for, pad tokens for decoders."""
import pytest
import torch
from tiny_task_models import llama

from workbench.tasks.hf_loading import (
    check_model_dir,
    ensure_pad_token,
    load_hf_model,
    load_tokenizer,
)


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    return llama(tmp_path_factory.mktemp("llama") / "m", head="lm")


def test_loads_in_the_dtype_asked_for(llama_dir):
    model = load_hf_model(llama_dir, "AutoModelForCausalLM", dtype="bf16")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert not model.training
    fp32 = load_hf_model(llama_dir, "AutoModelForCausalLM")
    assert {p.dtype for p in fp32.parameters()} == {torch.float32}


def test_pickled_weights_need_the_explicit_opt_in(tmp_path):
    path = llama(tmp_path / "bin", head="lm", safe=False)
    assert not list(path.glob("*.safetensors")) and list(path.glob("*.bin"))
    with pytest.raises(ValueError, match=r"only pickled weights.*allow_pickle=True \(CLI: --allow-pickle\)"):
        load_hf_model(path, "AutoModelForCausalLM")
    model = load_hf_model(path, "AutoModelForCausalLM", allow_pickle=True)
    assert sum(p.numel() for p in model.parameters()) > 0
    assert load_tokenizer(path).eos_token == "</s>"  # the tokenizer holds no pickles: no opt-in needed


def test_memory_check_refuses_before_loading(llama_dir, monkeypatch):
    import workbench.tasks.model_memory as mm

    monkeypatch.setattr(mm, "free_bytes", lambda device: 1000)
    with pytest.raises(MemoryError, match="1000|0.0 GB free on cpu"):
        load_hf_model(llama_dir, "AutoModelForCausalLM")


def test_bad_dtype_is_a_clear_error(llama_dir):
    with pytest.raises(ValueError, match="dtype 'int3' unknown"):
        load_hf_model(llama_dir, "AutoModelForCausalLM", dtype="int3")


def test_pad_token_from_eos_and_config_follows(llama_dir):
    from transformers import AutoConfig

    tok, cfg = load_tokenizer(llama_dir), AutoConfig.from_pretrained(llama_dir)
    assert tok.pad_token is None and cfg.pad_token_id is None
    ensure_pad_token(tok, cfg)
    assert tok.pad_token == "</s>" and cfg.pad_token_id == tok.eos_token_id == tok.pad_token_id


def test_no_weights_is_named(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="no weights"):
        check_model_dir(tmp_path)
    assert check_model_dir(tmp_path, need_weights=False) == tmp_path
