"""Student configs shrink every family's own width names; padding never falls back to a bare id 0."""
import pytest
import torch
import transformers

from workbench.runtime.families import pad_id
from workbench.steps.distill.student import build_student, student_config
from workbench.runtime.families import shape_of


@pytest.mark.parametrize("cls,kwargs,attrs", [
    ("DistilBertConfig", dict(dim=64, n_heads=4, hidden_dim=128), {"hidden_dim": 64}),
    ("T5Config", dict(d_model=64, d_ff=128, d_kv=16, num_heads=4), {"d_ff": 64}),
    ("OPTConfig", dict(hidden_size=64, num_attention_heads=4, ffn_dim=128), {"ffn_dim": 64}),
    ("BartConfig", dict(d_model=64, encoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=256),
     {"encoder_ffn_dim": 64, "decoder_ffn_dim": 128}),
    ("BertConfig", dict(hidden_size=64, num_attention_heads=4, intermediate_size=128), {"intermediate_size": 64}),
    ("GPT2Config", dict(n_embd=64, n_head=4, n_inner=96), {"n_inner": 48}),
])
def test_half_width_student_halves_the_feed_forward(cls, kwargs, attrs):
    cfg = student_config(getattr(transformers, cls)(**kwargs), num_layers=1, hidden_size=32)
    assert {a: getattr(cfg, a) for a in attrs} == attrs
    assert (cfg.hidden_size, cfg.num_attention_heads, cfg.num_hidden_layers) == (32, 2, 1)


def test_gqa_and_layer_types_follow_the_student():
    teacher = transformers.Qwen2Config(hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                                       intermediate_size=128, num_hidden_layers=4,
                                       layer_types=["full_attention", "sliding_attention"] * 2)
    cfg = student_config(teacher, num_layers=2, hidden_size=32, layer_map=(1, 2))
    assert cfg.layer_types == ["sliding_attention", "full_attention"]  # teacher layers 1 and 2
    assert (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.intermediate_size) == (2, 1, 64)


def test_albert_student_shares_its_one_block():
    torch.manual_seed(0)
    teacher = transformers.AlbertForSequenceClassification(transformers.AlbertConfig(
        vocab_size=50, embedding_size=16, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
        intermediate_size=64)).eval()
    student, facts = build_student(teacher, num_layers=2, hidden_size=32)
    assert shape_of(student.config).num_layers == 2 and facts["init_copied_fraction"] == 1.0


class _Tok:
    def __init__(self, pad, eos):
        self.pad_token_id, self.eos_token_id = pad, eos


def test_pad_id_prefers_tokenizer_then_config_then_eos():
    cfg = transformers.GPT2Config(eos_token_id=7)
    assert pad_id(_Tok(None, 5), cfg) == 5           # GPT-2 / Llama checkpoints: no pad token, EOS pads
    assert pad_id(_Tok(3, 5), cfg) == 3
    cfg.pad_token_id = 9
    assert pad_id(_Tok(None, 5), cfg) == 9
    with pytest.raises(ValueError, match="pad_token"):
        pad_id(_Tok(None, None), transformers.BertConfig(pad_token_id=None, eos_token_id=None))
