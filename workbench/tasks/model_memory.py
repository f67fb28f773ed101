"""Will a model fit? Parameter counts from safetensors headers (no weights read), compared with free memory.

A 7B model needs ~28 GB in fp32 and ~14 GB in bf16; loading it blind on a 16 GB machine swaps or dies half way.
This module answers before ``from_pretrained`` runs, and says which precision would fit.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

# Bytes per element of each safetensors dtype tag (the header stores the tag, not the size).
SAFETENSORS_BYTES = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2,
                     "U16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I8": 1, "U8": 1, "BOOL": 1}
DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1, "int4": 0.5}
# Loading holds the weights plus some working memory (non-persistent buffers, first activations, allocator slack).
LOAD_OVERHEAD = 1.1
GB = 1e9
MAX_HEADER_BYTES = 100_000_000  # a header bigger than this is a corrupt or hostile file, not a model


def read_safetensors_header(path: str | Path) -> dict:
    """The JSON header of one .safetensors file: ``{name: {"dtype", "shape", "data_offsets"}}``. Reads only the header."""
    path = Path(path)
    with open(path, "rb") as f:
        prefix = f.read(8)
        if len(prefix) != 8:
            raise ValueError(f"{path} is not a safetensors file (shorter than its 8-byte header length)")
        (length,) = struct.unpack("<Q", prefix)  # little-endian u64, per the safetensors format
        if length > MAX_HEADER_BYTES:
            raise ValueError(f"{path}: header claims {length} bytes; the file is corrupt or not safetensors")
        header = json.loads(f.read(length))
    header.pop("__metadata__", None)
    return header


def checkpoint_numel(model_dir: str | Path) -> tuple[int, int]:
    """(parameters, bytes as stored) over every safetensors file of a model directory; (0, 0) if there are none."""
    numel = stored = 0
    for file in sorted(Path(model_dir).glob("*.safetensors")):
        for name, info in read_safetensors_header(file).items():
            n = 1
            for dim in info["shape"]:
                n *= dim
            numel += n
            stored += int(n * SAFETENSORS_BYTES.get(info["dtype"], 4))
    return numel, stored


def config_numel(model_dir: str | Path) -> int | None:
    """A rough parameter count from config.json alone (decoder/encoder of the usual shape), or None."""
    cfg = json.loads((Path(model_dir) / "config.json").read_text())
    hidden = cfg.get("hidden_size") or cfg.get("n_embd") or cfg.get("d_model")
    layers = cfg.get("num_hidden_layers") or cfg.get("n_layer") or cfg.get("num_layers")
    vocab = cfg.get("vocab_size")
    if not (hidden and layers and vocab):
        return None
    ffn = cfg.get("intermediate_size") or cfg.get("n_inner") or cfg.get("d_ff") or 4 * hidden
    # Attention ~4 h^2 and a gated or plain MLP ~2-3 h*ffn per layer, plus the embedding (tied head not counted twice).
    per_layer = 4 * hidden * hidden + 3 * hidden * ffn
    return int(layers * per_layer + vocab * hidden * (1 if cfg.get("tie_word_embeddings", True) else 2))


def parameter_count(model_dir: str | Path) -> int:
    """Parameters of a checkpoint: exact from safetensors headers, else estimated from config.json."""
    numel, _ = checkpoint_numel(model_dir)
    if numel:
        return numel
    estimate = config_numel(model_dir)
    if estimate is None:
        raise ValueError(f"cannot size {model_dir}: no safetensors headers and config.json lacks "
                         "hidden_size / num_hidden_layers / vocab_size")
    return estimate


def needed_bytes(n_params: int, precision: str) -> int:
    """Bytes to load ``n_params`` weights in ``precision`` (fp32, fp16, bf16, int8, int4) with the load overhead."""
    if precision not in DTYPE_BYTES:
        raise ValueError(f"precision {precision!r} unknown: use one of {sorted(DTYPE_BYTES)}")
    return int(n_params * DTYPE_BYTES[precision] * LOAD_OVERHEAD)


def free_bytes(device: str = "cpu") -> int:
    """Memory free now on ``device``: available RAM (psutil) on CPU, free memory of the current GPU on CUDA."""
    if device.startswith("cuda"):
        import torch

        free, _total = torch.cuda.mem_get_info()
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)


def fit_message(n_params: int, precision: str, free: int, device: str) -> str | None:
    """None when ``precision`` fits in ``free`` bytes, else an error naming what would fit."""
    need = needed_bytes(n_params, precision)
    if need <= free:
        return None
    sizes = ", ".join(f"{needed_bytes(n_params, p) / GB:.1f} GB in {p}" for p in ("fp32", "bf16", "int8"))
    fits = [p for p in ("bf16", "int8", "int4") if needed_bytes(n_params, p) <= free and
            DTYPE_BYTES[p] < DTYPE_BYTES[precision]]
    advice = (f"try dtype={fits[0]}" + (" (int8/int4 as weight-only quantisation)" if fits[0].startswith("int") else "")
              if fits else "use a machine with more memory or a smaller model")
    return (f"model has {n_params / 1e9:.2f}B parameters: needs {sizes}; {free / GB:.1f} GB free on {device}, "
            f"so {precision} does not fit: {advice}")


def check_fits(model_dir: str | Path, precision: str = "fp32", device: str = "cpu", free: int | None = None) -> int:
    """Raise MemoryError before loading when the checkpoint cannot fit; return the bytes it needs.

    Example:
        >>> check_fits("~/llama-7b", "fp32", "cpu")     # doctest: +SKIP
        MemoryError: model has 6.74B parameters: needs 29.7 GB in fp32, 14.8 GB in bf16, 7.4 GB in int8; ...
    """
    n_params = parameter_count(Path(model_dir).expanduser())
    free = free_bytes(device) if free is None else free
    message = fit_message(n_params, precision, free, device)
    if message:
        raise MemoryError(message)
    return needed_bytes(n_params, precision)
