"""Build a student from a Hugging Face teacher: fewer layers and/or a smaller hidden size, teacher-initialised.

The student config is a copy of the teacher's with the depth (and optionally width) changed, so the student
keeps the teacher's vocabulary, tokenizer, positions and head: it can replace the teacher (or serve as its
speculative-decoding draft) without any re-tokenisation.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import torch

from workbench.runtime.families import shape_of
from workbench.tasks.hf_loading import model_kind
from workbench.util.files import publish_dir, write_checksums


# The teacher kinds distillation has recipes for, and the transformers class a saved student of each loads with.
AUTO_CLASSES = {"classification": "AutoModelForSequenceClassification", "causal-lm": "AutoModelForCausalLM"}


def teacher_kind(model: torch.nn.Module) -> str:
    """"classification" or "causal-lm" (from the HF class name); anything else is a clear error."""
    kind = model_kind(model)
    if kind not in AUTO_CLASSES:
        raise TypeError(f"distill needs a Hugging Face *ForSequenceClassification or *ForCausalLM teacher, got "
                        f"{type(model).__name__}: load the teacher with get_task(...).baseline()")
    return kind


def layer_list(model: torch.nn.Module) -> tuple[str, torch.nn.ModuleList]:
    """Name and module of the transformer block list (bert.encoder.layer, transformer.h, model.layers, ...)."""
    n = model.config.num_hidden_layers
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n and name:
            return name, module
    raise TypeError(f"{type(model).__name__}: found no list of {n} transformer blocks to pick student layers from")


def default_layer_map(teacher_layers: int, student_layers: int) -> tuple[int, ...]:
    """Evenly spaced teacher layers, first and last included (4 -> 2 gives (0, 3); 6 -> 3 gives (0, 2, 5))."""
    if student_layers == 1:
        return (teacher_layers - 1,)
    step = (teacher_layers - 1) / (student_layers - 1)
    return tuple(int(round(i * step)) for i in range(student_layers))


def student_config(teacher_config, num_layers: int, hidden_size: int, layer_map: tuple[int, ...] | None = None):
    """Teacher config with depth/width changed; heads keep the teacher's head size, the MLP keeps its ratio.

    Widths are read and written through the family adapter (:mod:`workbench.runtime.families`), so DistilBERT's
    ``hidden_dim``, T5's ``d_ff``, OPT's ``ffn_dim``, BART's two ``*_ffn_dim`` and GPT-2's ``n_inner`` shrink too.
    """
    from workbench.runtime.families import scaled_widths

    cfg = copy.deepcopy(teacher_config)
    shape = shape_of(teacher_config)
    cfg.num_hidden_layers = num_layers
    if isinstance(getattr(cfg, "layer_types", None), list):  # per-layer kinds (Qwen2, Gemma2): the picked layers'
        picked = layer_map or default_layer_map(shape.num_layers, num_layers)
        cfg.layer_types = [teacher_config.layer_types[i] for i in picked]
    if hidden_size != shape.hidden_size:
        head_dim = shape.head_dim
        if hidden_size % head_dim:
            raise ValueError(f"student hidden_size {hidden_size} is not a multiple of the teacher's head size "
                             f"{head_dim}: pick a multiple of {head_dim}")
        cfg.hidden_size = hidden_size
        cfg.num_attention_heads = hidden_size // head_dim
        for key, value in scaled_widths(teacher_config, hidden_size).items():
            setattr(cfg, key, value)
        if getattr(cfg, "num_key_value_heads", None):
            cfg.num_key_value_heads = max(1, cfg.num_attention_heads * shape.kv_heads // shape.num_heads)
    return cfg


def build_student(teacher: torch.nn.Module, num_layers: int, hidden_size: int,
                  layer_map: tuple[int, ...] | None = None, seed: int = 0) -> tuple[torch.nn.Module, dict]:
    """A fresh student of the teacher's class; every tensor whose shape matches is copied from the teacher.

    Student block i starts from teacher block ``layer_map[i]``; embeddings, final norm and head are copied
    when the width is unchanged. Returns the student and init facts (layer map, share of weights copied).
    """
    t_layers = teacher.config.num_hidden_layers
    layer_map = tuple(layer_map) if layer_map else default_layer_map(t_layers, num_layers)
    if len(layer_map) != num_layers or not all(0 <= i < t_layers for i in layer_map):
        raise ValueError(f"layer_map {layer_map} must name {num_layers} teacher layers in 0..{t_layers - 1}")
    torch.manual_seed(seed)  # the random init of anything not copied is part of the recipe
    student = type(teacher)(student_config(teacher.config, num_layers, hidden_size, layer_map)).float()
    # ALBERT-style models reuse one block for every layer: depth is a loop count, no block list to pick from.
    prefix = None if shape_of(teacher.config).shares_layers else layer_list(teacher)[0]
    t_state = teacher.state_dict()
    copied = total = 0
    new_state = student.state_dict()
    for key, value in new_state.items():
        source = key
        if prefix and key.startswith(prefix + "."):
            index, rest = key[len(prefix) + 1:].split(".", 1)
            source = f"{prefix}.{layer_map[int(index)]}.{rest}"
        total += value.numel()
        if source in t_state and t_state[source].shape == value.shape:
            new_state[key] = t_state[source].detach().clone().float()
            copied += value.numel()
    student.load_state_dict(new_state)
    return student, {"layer_map": list(layer_map), "init_copied_fraction": round(copied / max(total, 1), 4)}


def load_student_dir(path: str | Path, teacher: torch.nn.Module, teacher_tokenizer) -> torch.nn.Module:
    """A user-supplied student start point; its tokenizer and vocabulary must be the teacher's (KD compares logits)."""
    from workbench.tasks.hf_loading import load_hf_model, load_tokenizer

    auto = AUTO_CLASSES[teacher_kind(teacher)]
    student_tok = load_tokenizer(path)
    if student_tok.get_vocab() != teacher_tokenizer.get_vocab():
        raise ValueError(f"student {path} has a different tokenizer vocabulary than the teacher "
                         f"({len(student_tok)} vs {len(teacher_tokenizer)} tokens): token-level KD needs the same "
                         "tokenizer; start the student from the teacher (leave student_dir unset) instead")
    student = load_hf_model(path, auto)
    s_out, t_out = student.get_output_embeddings(), teacher.get_output_embeddings()
    s_n = student.config.vocab_size if t_out is not None else getattr(student.config, "num_labels", None)
    t_n = teacher.config.vocab_size if t_out is not None else getattr(teacher.config, "num_labels", None)
    if s_n != t_n or (s_out is None) != (t_out is None):
        raise ValueError(f"student {path} outputs {s_n} logits but the teacher {t_n}: they must share the output space")
    return student.float()


def save_student(model: torch.nn.Module, tokenizer, out_dir: str | Path, record: dict | None = None) -> Path:
    """Save a student as a HF directory (fp32 safetensors + the teacher's tokenizer), atomically, with checksums.

    The directory loads with ``AutoModel*.from_pretrained`` and, for LMs, works as ``draft_dir`` of a
    causal-LM task (speculative decoding). ``checksums.json`` holds the sha256 of every file.

    Example:
        >>> save_student(student.model, task.tokenizer, "artifacts/drafts/pydoc-gpt2-kd")   # doctest: +SKIP
    """
    out = Path(out_dir)
    with publish_dir(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "distillation.json").write_text(json.dumps(record or {}, indent=2, default=str) + "\n")
        write_checksums(tmp)
    return out
