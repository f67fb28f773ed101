"""The per-family shape adapter: the config spelling of each family read into one set of shape facts."""
import pytest
import transformers

from workbench.runtime.families import (cache_axis, cache_shape, ort_model_type, scaled_ffn, scaled_widths,
                                        shape_of)

# (config class, arguments) -> (hidden, layers, heads, kv heads, head_dim, ffn width, ORT optimizer model type)
CASES = [
    ("BertConfig", dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96),
     (64, 2, 4, 4, 16, 96, "bert")),
    ("DistilBertConfig", dict(dim=64, n_layers=3, n_heads=4, hidden_dim=80), (64, 3, 4, 4, 16, 80, "bert")),
    ("GPT2Config", dict(n_embd=64, n_layer=2, n_head=4), (64, 2, 4, 4, 16, 256, "gpt2")),  # n_inner None: 4 x
    ("GPT2Config", dict(n_embd=64, n_layer=2, n_head=4, n_inner=100), (64, 2, 4, 4, 16, 100, "gpt2")),
    ("LlamaConfig", dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         intermediate_size=112), (64, 2, 4, 2, 16, 112, None)),
    ("GemmaConfig", dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1,
                         head_dim=32, intermediate_size=128), (64, 2, 4, 1, 32, 128, None)),
    ("OPTConfig", dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, ffn_dim=72),
     (64, 2, 4, 4, 16, 72, None)),
    ("GPTNeoXConfig", dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=88),
     (64, 2, 4, 4, 16, 88, "gpt_neox")),
    ("T5Config", dict(d_model=64, d_ff=144, d_kv=8, num_layers=2, num_heads=4), (64, 2, 4, 4, 8, 144, "t5")),
    ("BartConfig", dict(d_model=64, encoder_ffn_dim=120, decoder_ffn_dim=120, encoder_attention_heads=4,
                        encoder_layers=2), (64, 2, 4, 4, 16, 120, "bart")),
]


@pytest.mark.parametrize("cls,kwargs,want", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_shape_reads_each_family_spelling(cls, kwargs, want):
    s = shape_of(getattr(transformers, cls)(**kwargs))
    assert (s.hidden_size, s.num_layers, s.num_heads, s.kv_heads, s.head_dim, s.ffn_width, s.ort_model_type) == want


def test_decoders_without_ort_fusions_and_unknown_types():
    for model_type in ("llama", "mistral", "qwen2", "phi", "phi3", "gemma", "opt", "never-heard-of"):
        assert ort_model_type(model_type) is None
    assert ort_model_type("deberta-v2") == "bert" and ort_model_type("qwen3") == "qwen3"


def test_scaled_widths_follow_the_family_names():
    bart = transformers.BartConfig(d_model=64, encoder_ffn_dim=128, decoder_ffn_dim=256)
    assert scaled_ffn(bart, 32) == {"encoder_ffn_dim": 64, "decoder_ffn_dim": 128}
    assert scaled_ffn(transformers.GPT2Config(n_embd=64), 32) == {"n_inner": None}  # stays "4 x hidden"
    deberta = transformers.DebertaV2Config(hidden_size=64, intermediate_size=128, num_attention_heads=4)
    assert scaled_widths(deberta, 32) == {"intermediate_size": 64, "pooler_hidden_size": 32}


def test_cache_shape_uses_kv_heads_and_head_dim():
    gemma = transformers.GemmaConfig(hidden_size=64, num_attention_heads=4, num_key_value_heads=1, head_dim=32)
    assert cache_shape(gemma, batch=3, past_len=5) == (3, 1, 5, 32)
    assert cache_axis("llama") == 2


def test_config_without_shape_names_is_a_clear_error():
    class Odd:
        model_type = "odd"

    with pytest.raises(ValueError, match="FAMILIES"):
        shape_of(Odd())
