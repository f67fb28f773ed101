"""One small adapter per model family: the shape facts steps, runtimes and measurement need, read from a config.

Configs spell the same thing differently (GPT-2 ``n_inner``, DistilBERT ``hidden_dim``, T5 ``d_ff``, OPT
``ffn_dim``, BERT/Llama ``intermediate_size``; Gemma's ``head_dim`` is not hidden / heads; Llama-style
``num_key_value_heads`` makes the KV cache smaller than the query heads). Steps ask :func:`shape_of` instead of
reading attribute names, so a new family is one row in :data:`FAMILIES`, not edits across the steps.

Example:
    >>> from transformers import LlamaConfig
    >>> s = shape_of(LlamaConfig(hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
    ...                          intermediate_size=128, num_hidden_layers=2))
    >>> (s.hidden_size, s.ffn_width, s.kv_heads, s.head_dim, s.ort_model_type)
    (64, 128, 2, 16, None)
"""
from __future__ import annotations

from dataclasses import dataclass

# The KV-cache layout optimum exports for every family in FAMILIES: [batch, kv_heads, past_seq, head_dim].
BHSD = ("batch", "kv_heads", "past_sequence", "head_dim")


@dataclass(frozen=True)
class Family:
    """How one family spells its shape facts, and how ORT's transformer optimiser knows it.

    ffn_attrs: config attributes holding the feed-forward width (all are scaled together; BART has two).
    ffn_default: feed-forward width as a multiple of hidden when the attribute is None (GPT-2 ``n_inner``).
    ort_model_type: ``onnxruntime.transformers.optimizer`` model type with fusions for this graph, or None.
    shares_layers: one set of block weights reused for every layer (ALBERT): depth is a loop count.
    cache_layout: axes of each past key/value tensor of the exported graph.
    hidden_tied: other width attributes that must follow hidden_size when a student is narrower (DeBERTa's pooler).
    """

    ffn_attrs: tuple[str, ...] = ("intermediate_size",)
    ffn_default: int | None = None
    ort_model_type: str | None = None
    shares_layers: bool = False
    cache_layout: tuple[str, ...] = BHSD
    hidden_tied: tuple[str, ...] = ()


# model_type (config.json) -> family. ORT 1.32's optimizer knows: bart, bert, clip, gpt2, gpt_neox, phi (phi-2, dynamo
# exports only), qwen3, t5, vit, ...; llama, mistral, qwen2, phi, phi3, opt, gemma get O1 with a note.
FAMILIES: dict[str, Family] = {
    "bert": Family(ort_model_type="bert"),
    "roberta": Family(ort_model_type="bert"),
    "xlm-roberta": Family(ort_model_type="bert"),
    "electra": Family(ort_model_type="bert"),
    "deberta-v2": Family(ort_model_type="bert", hidden_tied=("pooler_hidden_size",)),
    "albert": Family(ort_model_type="bert", shares_layers=True),
    "distilbert": Family(("hidden_dim",), ort_model_type="bert"),
    "gpt2": Family(("n_inner",), ffn_default=4, ort_model_type="gpt2"),
    "gpt_neox": Family(ort_model_type="gpt_neox"),
    # ORT's "phi" pass targets torch.dynamo exports of phi-2 and breaks on optimum's graph (TypeError in the pass)
    "phi": Family(),
    "qwen3": Family(ort_model_type="qwen3"),
    "llama": Family(), "mistral": Family(), "qwen2": Family(), "phi3": Family(), "gemma": Family(),
    "opt": Family(("ffn_dim",)),
    "t5": Family(("d_ff",), ort_model_type="t5"),
    "bart": Family(("encoder_ffn_dim", "decoder_ffn_dim"), ort_model_type="bart"),
}
_GENERIC = Family(("intermediate_size", "hidden_dim", "d_ff", "n_inner", "ffn_dim"))


@dataclass(frozen=True)
class Shape:
    """Shape facts of one model config (see :func:`shape_of`)."""

    model_type: str
    hidden_size: int
    num_layers: int
    num_heads: int
    kv_heads: int
    head_dim: int
    ffn_width: int | None
    ffn_attrs: tuple[str, ...]
    ort_model_type: str | None
    shares_layers: bool
    cache_layout: tuple[str, ...]


def family(model_type: str | None) -> Family:
    """The family of a ``model_type``; unknown types get a generic adapter that tries the common spellings."""
    return FAMILIES.get(model_type or "", _GENERIC)


def ort_model_type(model_type: str | None) -> str | None:
    """ORT transformer-optimizer model type with fusions for ``model_type``, or None (basic optimisation only)."""
    return family(model_type).ort_model_type


def _ffn(cfg, fam: Family, hidden: int) -> tuple[int | None, tuple[str, ...]]:
    present = tuple(a for a in fam.ffn_attrs if hasattr(cfg, a))
    for attr in present:
        value = getattr(cfg, attr)
        if value:
            return int(value), present
    return (fam.ffn_default * hidden if fam.ffn_default else None), present


def shape_of(config) -> Shape:
    """Hidden size, depth, heads, KV heads, head size, feed-forward width and ORT model type of a config.

    Reads the generic names transformers maps onto each family's own (``hidden_size`` -> ``n_embd`` / ``dim`` /
    ``d_model``), ``head_dim`` where the family sets it (Gemma, T5 ``d_kv``) and ``num_key_value_heads`` (GQA).
    """
    config = getattr(config, "config", config)  # a model is fine too
    model_type = getattr(config, "model_type", "")
    fam = family(model_type)
    try:
        hidden, layers, heads = config.hidden_size, config.num_hidden_layers, config.num_attention_heads
    except AttributeError as exc:
        raise ValueError(f"config of model_type {model_type!r} lacks a standard shape attribute ({exc}): add its "
                         "spelling to workbench.runtime.families.FAMILIES") from None
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    ffn, attrs = _ffn(config, fam, hidden)
    return Shape(model_type, int(hidden), int(layers), int(heads), int(kv_heads), int(head_dim), ffn, attrs,
                 fam.ort_model_type, fam.shares_layers, fam.cache_layout)


def scaled_ffn(config, new_hidden: int) -> dict[str, int | None]:
    """Feed-forward attributes of ``config`` scaled to a width ``new_hidden`` (keeps the family's MLP ratio).

    An attribute left None (GPT-2 ``n_inner``: 4 x hidden) stays None, since the family already derives it.
    """
    s = shape_of(config)
    return {a: (getattr(config, a) * new_hidden // s.hidden_size if getattr(config, a) else None)
            for a in s.ffn_attrs}


def scaled_widths(config, new_hidden: int) -> dict[str, int | None]:
    """Every width attribute a narrower student changes besides hidden_size: feed-forward and hidden-tied ones."""
    tied = {a: new_hidden for a in family(getattr(config, "model_type", "")).hidden_tied
            if getattr(config, a, None) == shape_of(config).hidden_size}
    return {**scaled_ffn(config, new_hidden), **tied}


def cache_axis(model_type: str | None, axis: str = "past_sequence") -> int:
    """Position of ``axis`` in the family's past key/value tensors (the sequence axis by default)."""
    layout = family(model_type).cache_layout
    if axis not in layout:
        raise ValueError(f"cache layout {layout} of {model_type!r} has no {axis!r} axis")
    return layout.index(axis)


def cache_shape(config, batch: int, past_len: int) -> tuple[int, ...]:
    """Shape of one past key (or value) tensor for ``batch`` rows and ``past_len`` cached positions."""
    s = shape_of(config)
    sizes = {"batch": batch, "kv_heads": s.kv_heads, "past_sequence": past_len, "head_dim": s.head_dim}
    return tuple(sizes[a] for a in s.cache_layout)


def model_type_beside(path) -> str | None:
    """``model_type`` from the config.json next to an exported file (optimum writes one), or None."""
    import json
    from pathlib import Path

    cfg = Path(path).parent / "config.json"
    return json.loads(cfg.read_text()).get("model_type") if cfg.is_file() else None


__all__ = ["Family", "FAMILIES", "Shape", "shape_of", "family", "ort_model_type", "scaled_ffn", "scaled_widths",
           "cache_axis", "cache_shape", "BHSD", "model_type_beside"]


def pad_id(tokenizer, config) -> int:
    """The id right-padding uses: the tokenizer's pad token, else the config's, else EOS (masked out either way).

    Never a bare 0: in many vocabularies 0 is a real token (``!`` in GPT-2, ``<s>`` in RoBERTa).
    """
    for value in (getattr(tokenizer, "pad_token_id", None), getattr(config, "pad_token_id", None),
                  getattr(tokenizer, "eos_token_id", None), getattr(config, "eos_token_id", None)):
        if isinstance(value, (list, tuple)):
            value = value[0] if value else None
        if value is not None:
            return int(value)
    raise ValueError("the tokenizer has no pad or EOS token and the config names none: set "
                     "tokenizer.pad_token (e.g. to its EOS token) and save it beside the model")
