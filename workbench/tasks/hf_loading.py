"""Loading a local Hugging Face model directory, with errors that say what is wrong and how to fix it."""
from __future__ import annotations

from pathlib import Path

import torch


def check_model_dir(path: str | Path) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"model path {path} does not exist: pass a local Hugging Face model directory")
    if not path.is_dir():
        raise NotADirectoryError(f"model path {path} is a file: pass the directory that holds config.json")
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} has no config.json: it is not a Hugging Face model directory "
                                "(save one with model.save_pretrained(dir))")
    if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
        raise FileNotFoundError(f"{path} has no weights (*.safetensors): save them with save_pretrained(dir)")
    return path


def dtype_kwargs(dtype: torch.dtype = torch.float32) -> dict:
    """transformers 4.56 renamed ``torch_dtype`` to ``dtype`` (5.x defaults to the stored dtype): ask explicitly."""
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return {"dtype": dtype} if (major, minor) >= (4, 56) else {"torch_dtype": dtype}


def load_hf_model(path: str | Path, auto_class: str, trust_remote_code: bool = False) -> torch.nn.Module:
    """Load ``path`` with ``transformers.<auto_class>`` as fp32, eval mode, safetensors preferred."""
    import transformers

    path = check_model_dir(path)
    cls = getattr(transformers, auto_class)
    model = cls.from_pretrained(path, trust_remote_code=trust_remote_code, use_safetensors=any(path.glob("*.safetensors")),
                                **dtype_kwargs(torch.float32))
    return model.eval()


def load_tokenizer(path: str | Path, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(check_model_dir(path), trust_remote_code=trust_remote_code)


def model_kind(model) -> str:
    """What a model is, from its Hugging Face class name: "classification" (``*ForSequenceClassification``),
    "causal-lm" (``*ForCausalLM`` / ``*LMHeadModel``), "hf" (another HF model) or "module" (plain torch)."""
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
