"""What the engine can load, checked before anything is written or any server starts.

Architectures: vLLM's own model registry, asked once through the engine venv and cached beside it (importing vLLM
takes seconds); without the venv, a short list of families vLLM has served for years, said so in the reason.
Quantisation: vLLM's CPU backend runs compressed-tensors W4A16 with an even group size and layer sizes that are
multiples of 32 (checked in ``CPUWNA16LinearKernel.can_implement``); it has no W8A16 kernel, so the workbench's
per-channel int8 weights are served as W8A8 (activations quantised per token at run time).
"""
from __future__ import annotations

import json
import subprocess

from workbench.serving.engine import envs

# vLLM model classes known to load without its registry at hand (a GPU user's `vllm` has these too).
KNOWN_ARCHITECTURES = ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM",
                       "GPT2LMHeadModel", "GPTNeoXForCausalLM", "OPTForCausalLM", "PhiForCausalLM",
                       "Phi3ForCausalLM", "GemmaForCausalLM", "Gemma2ForCausalLM", "FalconForCausalLM")
# Families whose vLLM loader maps float weight names only (GPT-2 transposes its Conv1D `.weight`s by name): a
# compressed-tensors checkpoint of them would load wrong, so only bf16 is exported for them.
FLOAT_ONLY_MODEL_TYPES = ("gpt2",)
LAYER_MULTIPLE = 32
PRECISIONS = ("bf16", "int8", "int4")


class EngineUnsupported(ValueError):
    """The engine cannot load this variant (the message says why and what to export instead)."""


def engine_architectures() -> tuple[set[str], str]:
    """(architectures vLLM loads, where the list came from)."""
    try:
        python = envs.engine_python()
    except FileNotFoundError:
        return set(KNOWN_ARCHITECTURES), "built-in list (no engine venv: `make serve-env` to ask vLLM itself)"
    cache = python.parent.parent / ".workbench-architectures.json"
    if cache.is_file() and cache.stat().st_mtime >= python.stat().st_mtime:
        return set(json.loads(cache.read_text())), f"vLLM's registry ({cache})"
    code = ("import json; from vllm.model_executor.models import ModelRegistry; "
            "print(json.dumps(sorted(ModelRegistry.get_supported_archs())))")
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"could not ask vLLM ({python}) for its architectures: {out.stderr.strip()[-400:]}")
    archs = json.loads(out.stdout.strip().splitlines()[-1])
    from workbench.util.files import write_file_atomic

    write_file_atomic(cache, json.dumps(archs))
    return set(archs), "vLLM's registry"


def check_engine_loadable(hf_config, precision: str, group_size: int | None, linear_shapes) -> None:
    """Refuse, with the reason and the fix, what vLLM cannot load: an architecture outside its registry, a
    precision it has no kernel for, int4 groups or layer sizes its CPU W4A16 kernel does not take.

    Args:
        hf_config: the model's transformers config.
        precision: "bf16" / "fp32" / "fp16" (exported as bf16), "int8" or "int4" (weight-only).
        group_size: int4 group size.
        linear_shapes: (out_features, in_features) of each quantised Linear.
    """
    archs = list(getattr(hf_config, "architectures", None) or [])
    known, source = engine_architectures()
    if not archs or not any(a in known for a in archs):
        raise EngineUnsupported(f"vLLM cannot load architecture {archs or '(none in config.json)'} ({source} lists "
                                f"{len(known)} others, e.g. {', '.join(sorted(known)[:4])}): serve this model with "
                                "`workbench export` (Triton) instead")
    if precision in ("fp32", "fp16"):
        return   # exported as bf16
    if precision not in PRECISIONS:
        raise EngineUnsupported(f"precision {precision!r} has no vLLM CPU kernel in this export: export the float "
                                "baseline (bf16) or a WeightOnlyConfig int8 / int4 variant")
    if precision == "bf16":
        return
    model_type = getattr(hf_config, "model_type", "")
    if model_type in FLOAT_ONLY_MODEL_TYPES:
        raise EngineUnsupported(f"vLLM's {model_type} loader maps float weights by name (it transposes Conv1D "
                                f"weights), so a compressed-tensors {precision} checkpoint of it would not load: "
                                "export its float baseline (bf16)")
    if precision == "int8":
        return
    if group_size is None or group_size % 2:
        raise EngineUnsupported(f"int4 group size {group_size}: vLLM's CPU W4A16 kernel needs an even group size")
    bad = [s for s in linear_shapes if s[0] % LAYER_MULTIPLE or s[1] % LAYER_MULTIPLE]
    if bad:
        raise EngineUnsupported(f"{len(bad)} quantised layers have sizes that are not multiples of {LAYER_MULTIPLE} "
                                f"(first {bad[0]}): vLLM's CPU kernels need them for int4; export int8 or the float baseline (bf16)")


__all__ = ["EngineUnsupported", "check_engine_loadable", "engine_architectures", "KNOWN_ARCHITECTURES"]
