"""vLLM engine arguments: one dataclass, turned into the server's command-line flags, its environment, and the
``model.json`` that Triton's vLLM backend passes to the same engine.

The defaults are what a CPU box like this one can start in bounded memory (``VLLM_CPU_KVCACHE_SPACE`` GiB of KV
cache; unset, vLLM takes most of the RAM) with CUDA-graph / compile warm-up off (``enforce_eager``). The config
search varies the fields that move goodput: ``max_num_seqs`` (continuous-batching width),
``max_num_batched_tokens`` (the chunked-prefill budget per step), prefix caching, the KV-cache dtype; ``block_size``
(tokens per KV block) sets how much of a shared prefix the prefix cache can hold (whole blocks only).

Compute dtype: vLLM's own choice for a bf16 checkpoint is bf16 on every x86 CPU, but a CPU without AMX or AVX512-BF16
emulates it (every GEMM converts to fp32 and back): on a 2-core AVX2 EPYC the 134M Llama's idle TTFT was 2039 ms in
bf16 and 428 ms in fp32, and 8 concurrent requests made 16.4 vs 48.4 tokens/s. So the default follows the machine
(:func:`engine_dtype_here`), and the config search tries it against vLLM's bf16 where the two differ.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

KV_DTYPES = ("auto", "fp8", "fp8_e4m3", "fp8_e5m2")
DTYPES = ("bfloat16", "float32", "float16")
VLLM_AUTO_DTYPE = "bfloat16"   # what `--dtype auto` resolves to for the bf16 checkpoints the export writes


def engine_dtype_here() -> str:
    """The compute dtype the engine should run here: bf16 on a GPU or a CPU with native bf16 GEMMs, fp32 on a CPU that
    would emulate bf16 (module doc)."""
    import torch

    from workbench.runtime.cpu import isa_summary, native_bf16

    return "bfloat16" if torch.cuda.is_available() or native_bf16(isa_summary())[0] else "float32"


@dataclass(frozen=True)
class EngineArgs:
    """What the engine is started with (besides the checkpoint)."""

    max_model_len: int = 512
    max_num_seqs: int = 8
    max_num_batched_tokens: int | None = None     # None: vLLM's default chunked-prefill budget
    enable_prefix_caching: bool = True             # vLLM's default on this version
    kv_cache_dtype: str = "auto"
    block_size: int | None = None                  # KV block tokens; None: the engine's (128 on vLLM's CPU backend)
    dtype: str = dataclasses.field(default_factory=engine_dtype_here)   # compute dtype (module doc)
    enforce_eager: bool = True
    kv_cache_space_gib: int = 1                    # CPU backend: KV cache memory (VLLM_CPU_KVCACHE_SPACE)
    seed: int = 0

    def __post_init__(self):
        if self.max_model_len < 16 or self.max_num_seqs < 1 or self.kv_cache_space_gib < 1:
            raise ValueError(f"max_model_len ({self.max_model_len}) >= 16, max_num_seqs ({self.max_num_seqs}) >= 1 and "
                             f"kv_cache_space_gib ({self.kv_cache_space_gib}) >= 1 are needed")
        if self.block_size is not None and (self.block_size < 8 or self.block_size % 8):
            raise ValueError(f"block_size {self.block_size}: a multiple of 8 tokens (vLLM's CPU backend prefers "
                             "multiples of 32), or None for the engine's default")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype {self.dtype!r}: use one of {DTYPES}")
        if self.kv_cache_dtype not in KV_DTYPES:
            raise ValueError(f"kv_cache_dtype {self.kv_cache_dtype!r}: use one of {KV_DTYPES}")
        if self.max_num_batched_tokens is not None and self.max_num_batched_tokens < self.max_num_seqs:
            raise ValueError(f"max_num_batched_tokens ({self.max_num_batched_tokens}) must be >= max_num_seqs "
                             f"({self.max_num_seqs}): every running sequence needs a token per step")

    def label(self) -> str:
        return (f"seqs{self.max_num_seqs}-tok{self.max_num_batched_tokens or 'def'}-"
                f"pc{'on' if self.enable_prefix_caching else 'off'}-kv{self.kv_cache_dtype}"
                + (f"-blk{self.block_size}" if self.block_size else "")
                + ("" if self.dtype == VLLM_AUTO_DTYPE else f"-{self.dtype}"))

    def cli(self) -> list[str]:
        """Flags for ``python -m vllm.entrypoints.openai.api_server`` (after ``--model DIR``)."""
        flags = ["--dtype", self.dtype, "--max-model-len", str(self.max_model_len), "--max-num-seqs",
                 str(self.max_num_seqs), "--kv-cache-dtype", self.kv_cache_dtype, "--seed", str(self.seed),
                 "--enable-prefix-caching" if self.enable_prefix_caching else "--no-enable-prefix-caching"]
        if self.max_num_batched_tokens is not None:
            flags += ["--max-num-batched-tokens", str(self.max_num_batched_tokens)]
        if self.block_size is not None:
            flags += ["--block-size", str(self.block_size)]
        return flags + (["--enforce-eager"] if self.enforce_eager else [])

    def env(self) -> dict[str, str]:
        """Environment of the server process (CPU backend settings; offline: the checkpoint is a local folder)."""
        return {"VLLM_CPU_KVCACHE_SPACE": str(self.kv_cache_space_gib), "VLLM_CPU_OMP_THREADS_BIND": "nobind",
                "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}

    def model_json(self, model_path: str) -> dict:
        """Triton vLLM backend's ``model.json``: the same engine arguments, by their Python names."""
        out = {"model": model_path, "dtype": self.dtype, "max_model_len": self.max_model_len,
               "max_num_seqs": self.max_num_seqs, "enable_prefix_caching": self.enable_prefix_caching,
               "kv_cache_dtype": self.kv_cache_dtype, "enforce_eager": self.enforce_eager, "seed": self.seed,
               "disable_log_stats": False}
        if self.max_num_batched_tokens is not None:
            out["max_num_batched_tokens"] = self.max_num_batched_tokens
        if self.block_size is not None:
            out["block_size"] = self.block_size
        return out

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "EngineArgs":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown engine arguments {sorted(unknown)}: known are {sorted(known)}")
        return cls(**data)


def triton_config_pbtxt(name: str) -> str:
    """Triton's vLLM backend config: the engine owns batching and devices, so only the backend and one model
    instance are declared (decoupled streaming is the backend's own default)."""
    return (f'name: "{name}"\nbackend: "vllm"\n'
            "# Batching, KV cache and devices belong to the vLLM engine (model.json), not to Triton.\n"
            "instance_group [\n  {\n    count: 1\n    kind: KIND_MODEL\n  }\n]\n")


__all__ = ["EngineArgs", "triton_config_pbtxt", "engine_dtype_here", "KV_DTYPES", "DTYPES", "VLLM_AUTO_DTYPE"]
