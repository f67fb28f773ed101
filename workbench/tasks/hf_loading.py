"""Loading a local Hugging Face model directory, with errors that say what is wrong and how to fix it.

Safe by default: safetensors weights only (a pickled ``*.bin`` can run code when unpickled) unless the caller opts
in with ``allow_pickle=True``; never ``trust_remote_code`` unless asked. Big models load straight into the dtype and
onto the device asked for, after a memory check (:mod:`workbench.tasks.model_memory`).
"""
from __future__ import annotations

from pathlib import Path

import torch

PRECISIONS = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}
PICKLE_OPT_IN = "allow_pickle=True (CLI: --allow-pickle)"


def check_model_dir(path: str | Path, allow_pickle: bool = False, need_weights: bool = True) -> Path:
    """The directory as a Path, or an error naming what is missing. Pickled weights need ``allow_pickle``."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"model path {path} does not exist: pass a local Hugging Face model directory")
    if not path.is_dir():
        raise NotADirectoryError(f"model path {path} is a file: pass the directory that holds config.json")
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} has no config.json: it is not a Hugging Face model directory "
                                "(save one with model.save_pretrained(dir))")
    if need_weights and not any(path.glob("*.safetensors")):
        if not any(path.glob("*.bin")):
            raise FileNotFoundError(f"{path} has no weights (*.safetensors): save them with save_pretrained(dir)")
        if not allow_pickle:
            raise ValueError(f"{path} has only pickled weights (*.bin), which can run code when loaded: convert them "
                             f"(model.save_pretrained(dir, safe_serialization=True)) or, if you trust the file, pass "
                             f"{PICKLE_OPT_IN}")
    return path


def as_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """torch dtype from a dtype or a precision name ("fp32", "fp16", "bf16")."""
    if isinstance(dtype, torch.dtype):
        if dtype not in PRECISIONS:
            raise ValueError(f"dtype {dtype} unsupported for loading: use fp32, fp16 or bf16")
        return dtype
    names = {v: k for k, v in PRECISIONS.items()}
    if dtype not in names:
        raise ValueError(f"dtype {dtype!r} unknown: use one of {sorted(names)}")
    return names[dtype]


def dtype_kwargs(dtype: torch.dtype = torch.float32) -> dict:
    """transformers 4.56 renamed ``torch_dtype`` to ``dtype`` (5.x defaults to the stored dtype): ask explicitly."""
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return {"dtype": dtype} if (major, minor) >= (4, 56) else {"torch_dtype": dtype}


def placement_kwargs(device: str) -> dict:
    """Load onto ``device`` directly: ``device_map`` needs accelerate; without it weights land on CPU (already in the
    target dtype, never fp32 first) and are moved once. transformers >= 4.56 always builds on the meta device, so
    ``low_cpu_mem_usage`` is the behaviour there and asked for only on older versions."""
    import importlib.util

    kwargs = {"low_cpu_mem_usage": True}
    if device != "cpu" and importlib.util.find_spec("accelerate") is not None:
        kwargs["device_map"] = {"": device}
    return kwargs


def load_hf_model(path: str | Path, auto_class: str, trust_remote_code: bool = False, *,
                  dtype: torch.dtype | str = torch.float32, device: str = "cpu", allow_pickle: bool = False,
                  check_memory: bool = True) -> torch.nn.Module:
    """Load ``path`` with ``transformers.<auto_class>`` in ``dtype`` on ``device``, eval mode.

    Raises MemoryError (saying which dtype would fit) before loading when free memory is short, and ValueError
    for pickled-only weights unless ``allow_pickle``.
    """
    import transformers

    from workbench.tasks.model_memory import check_fits

    path = check_model_dir(path, allow_pickle)
    dtype = as_dtype(dtype)
    kwargs = placement_kwargs(device)
    if check_memory:
        check_fits(path, PRECISIONS[dtype], device)
        if device != "cpu" and "device_map" not in kwargs:
            check_fits(path, PRECISIONS[dtype], "cpu")  # without accelerate the weights pass through RAM first
    cls = getattr(transformers, auto_class)
    model = cls.from_pretrained(path, trust_remote_code=trust_remote_code,
                                use_safetensors=not allow_pickle or any(path.glob("*.safetensors")),
                                **dtype_kwargs(dtype), **kwargs)
    if "device_map" not in kwargs and device != "cpu":
        model = model.to(device)
    return model.eval()


def load_tokenizer(path: str | Path, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(check_model_dir(path, need_weights=False), trust_remote_code=trust_remote_code)


def ensure_pad_token(tokenizer, config=None) -> None:
    """Decoder tokenizers (Llama, GPT-2, Mistral...) ship without a pad token: pad with EOS, and make the config's
    ``pad_token_id`` the id the tokenizer pads with, so a ``*ForSequenceClassification`` head (which pools at the
    rightmost token that is not ``pad_token_id``) finds each row's last real token. Right padding: causal attention leaves
    real tokens untouched by pads after them, while left pads would shift the position ids HF models count from 0."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError("tokenizer has neither a pad nor an EOS token: set tokenizer.pad_token and save it")
        tokenizer.pad_token = tokenizer.eos_token
    if config is not None and getattr(config, "pad_token_id", None) != tokenizer.pad_token_id:
        config.pad_token_id = tokenizer.pad_token_id


def model_kind(model) -> str:
    """What a model is, from its Hugging Face class name: "classification" (``*ForSequenceClassification``),
    "causal-lm" (``*ForCausalLM`` / ``*LMHeadModel``), "hf" (another HF model, encoder-decoders included: see
    :func:`is_seq2seq`) or "module" (plain torch)."""
    if not hasattr(model, "config") or not hasattr(model, "save_pretrained"):
        return "module"
    name = type(model).__name__
    if name.endswith("ForSequenceClassification"):
        return "classification"
    if name.endswith(("ForCausalLM", "LMHeadModel")):
        return "causal-lm"
    return "hf"


def context_length(config_or_model) -> int | None:
    """Longest sequence the model's position embeddings allow (``n_positions`` or ``max_position_embeddings``),
    or None when the config names neither. Accepts a config or a model that has one."""
    cfg = getattr(config_or_model, "config", config_or_model)
    return getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)


def is_hf_model(model) -> bool:
    """A transformers model (config + save_pretrained), as opposed to a plain ``nn.Module``."""
    return model_kind(model) != "module"


def is_causal_lm(model) -> bool:
    """A decoder LM head (``*ForCausalLM`` / ``*LMHeadModel``): generates, and is served as one full forward."""
    return model_kind(model) == "causal-lm"


def is_seq2seq(model) -> bool:
    """An encoder-decoder LM (T5, BART, ...): generates from a source text through encoder + decoder."""
    return is_hf_model(model) and bool(getattr(model.config, "is_encoder_decoder", False))
