"""The LLM decode arms, declared once: one name each across ``benchmarks/llm_decode.py``, the LLM panel and
``scripts/gpu_check.py``.

Every arm's ``call`` is ONE whole request: exactly ``new`` greedy tokens after the run's prompt (no EOS stop and no
min-length processor in any arm, HF included), prefill + decode, and it returns the request's
:class:`~workbench.decoding.fast_loop.DecodeResult`. TTFT, TPOT and ITL come from the emission times of that same
call (:func:`request_rows`); a batch of B prompts is one timing sample carrying B sequences.

Quality is measured on the weights that are timed, through the path that is timed (the compiled, frozen step for a
fast-loop arm, HF's own ``generate`` with its static cache and compiled decode forward, teacher forced, for
``hf-static-compile-fp32``, its ONNX file for an ORT arm; see :func:`_quality`); each row names that path in
``quality_scored_by``:

- ``options["quality"] == "agreement"`` (random-weight models, the benchmark): top-1 agreement (%) with the fp32
  parent's eager logits on the same weights, teacher forced over the same token sequences, and the mean
  KL(fp32 || arm) in ``extra``; the drop is in percentage points of agreement (paired bootstrap over positions).
- ``options["quality"] == "perplexity"`` (a trained model, the panel): perplexity on ``task.token_blocks``; the drop
  is the perplexity increase (paired bootstrap over blocks).

``ctx.options`` (see :func:`decode_context`): model (the fp32 parent), prompts ({batch: ids}), new, cache_len,
compile, quality, quality_ids / ppl_blocks, out (ONNX folder), batches. ``ctx.cache`` shares the quantised models
(an HF and a fast-loop arm of the same bits run one model), the ONNX files and the fp32 reference logits.
"""
from __future__ import annotations

import copy
import time
from pathlib import Path

import torch

from workbench.arms.base import Arm, ArmContext, BuiltArm

BASELINE = "hf-generate-fp32"
LLM_ARMS = {
    "hf-generate-fp32": ("baseline", "HF generate (dynamic cache), eager, fp32: the baseline"),
    "hf-static-compile-fp32": ("compile", "HF's own fast path: generate(cache_implementation='static') + "
                                          "torch.compile of the decode forward, fp32"),
    "fast-loop-fp32": ("decode", "fast loop: static KV cache + compiled, frozen, guard-free decode step, fp32"),
    "fast-loop-bf16": ("bf16", "fast loop on bf16 weights (bf16 KV cache)"),
    "fast-loop-bf16w": ("weight-only", "fast loop on bf16-stored weights, fp32 activations and KV cache "
                                       "(steps.bf16_weights); not in the default catalogue yet"),
    "hf-generate-bf16": ("bf16", "HF generate on bf16 weights"),
    "hf-int8-wo": ("weight-only", "weight-only int8 (per channel), HF generate"),
    "fast-loop-int8-wo": ("weight-only", "weight-only int8 under the fast loop"),
    "hf-int4-wo": ("weight-only", "weight-only int4 (groups of 128), HF generate"),
    "fast-loop-int4-wo": ("weight-only", "weight-only int4 (groups of 128) under the fast loop"),
    "hf-kv-int8": ("kv-cache", "int8 KV cache (per token and head scales), fp32 weights, own greedy loop"),
    "ort-fp32-kv": ("onnx", "ONNX Runtime with the KV cache, fp32"),
    "ort-int8-matmulnbits": ("onnx", "ONNX Runtime, MatMulNBits int8 weights (blocks of 32)"),
    "ort-int4-matmulnbits": ("onnx", "ONNX Runtime, MatMulNBits int4 weights (blocks of 32)"),
    "llama-cpp-f32": ("llama.cpp", "llama.cpp (llama-cpp-python), GGUF f32 from llama.cpp's converter, batch 1"),
    "llama-cpp-bf16": ("llama.cpp", "llama.cpp (llama-cpp-python), GGUF bf16 from llama.cpp's converter, batch 1"),
}
# arms that compute in bf16 (skipped where the CPU has no native bf16); fast-loop-bf16w stores bf16 but computes fp32
BF16_COMPUTE = ("fast-loop-bf16", "hf-generate-bf16", "llama-cpp-bf16")
BENCHMARK_ARMS = ("hf-generate-fp32", "hf-static-compile-fp32", "fast-loop-fp32", "fast-loop-bf16", "hf-int8-wo",
                  "fast-loop-int8-wo", "hf-int4-wo", "fast-loop-int4-wo", "ort-fp32-kv", "ort-int8-matmulnbits",
                  "ort-int4-matmulnbits", "llama-cpp-f32", "llama-cpp-bf16")


def random_llama(small: bool, vocab: int | None = None):
    """The benchmark's Llama-shaped random-weight decoder: 12 x 768, vocab 32000 (134M); tiny with ``small``.
    ``vocab``: another vocabulary size (the issue's probe shape is 12 x 768 with vocab 4096)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    shape = (dict(vocab_size=1024, hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4)
             if small else dict(vocab_size=32000, hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
                                num_attention_heads=12))
    if vocab is not None:
        shape["vocab_size"] = vocab
    return LlamaForCausalLM(LlamaConfig(**shape, max_position_embeddings=1024)).eval()


def decode_context(model, prompt: int, new: int, batches=(1,), compile: bool = True, quality: str = "agreement",
                   task=None, threads: int | None = None, out=None, ppl_blocks: int | None = None,
                   quality_seqs: int = 8, log=lambda message: None, seed: int = 1,
                   prompt_list: list | None = None, device: str = "cpu", compile_batches=None,
                   fast_loop_options: dict | None = None) -> ArmContext:
    """The context every LLM arm builds from: ``model`` (fp32 parent), prompts of ``prompt`` tokens per batch size
    (random ids; ``prompt_list``: real [1, prompt] prompts that batch-1 calls take in turn), ``new`` tokens per
    request. ``quality``: "agreement" (random weights) or "perplexity" (needs ``task``). ``compile_batches``: the
    batch sizes a compiled arm compiles at build (default all ``batches``); any other one compiles on its first call,
    which every timing path makes as an untimed warm-up (a search that screens at one batch size then compiles the
    others only for the arms it keeps). ``fast_loop_options``: keyword arguments of the fast-loop arms'
    :class:`~workbench.decoding.fast_loop.FastDecoder` (``cpp_wrapper``, ``gemm_template``: faster steps for a longer
    compile, for full-size models, not tests' tiny ones)."""
    if quality not in ("agreement", "perplexity"):
        raise ValueError(f"quality={quality!r}: use 'agreement' (random weights) or 'perplexity' (a trained model)")
    compile_batches = tuple(batches) if compile_batches is None else tuple(compile_batches)
    if not set(compile_batches) <= set(batches):
        raise ValueError(f"compile_batches={compile_batches} must be among batches={tuple(batches)}")
    if quality == "perplexity" and task is None:
        raise ValueError("quality='perplexity' needs the task whose token_blocks it is measured on")
    vocab = model.config.vocab_size
    gen = torch.Generator().manual_seed(seed)
    prompts = {b: torch.randint(0, vocab, (b, prompt), generator=gen) for b in batches}
    if prompt_list:
        prompts[1] = prompt_list[0]
    cache_len = prompt + new
    options = dict(model=model, prompts=prompts, new=new, compile=compile, quality=quality, out=out,
                   batches=tuple(batches), compile_batches=compile_batches, ppl_blocks=ppl_blocks,
                   prompt_list=prompt_list, fast_loop_options=dict(fast_loop_options or {}))
    if quality == "agreement":
        length = min(64, cache_len - 1)
        options["quality_ids"] = torch.randint(0, vocab, (quality_seqs, length), generator=gen)
    else:
        blocks = task.token_blocks("test")[:ppl_blocks]
        options["quality_ids"] = blocks
        cache_len = max(cache_len, blocks.shape[1] + 1)
    options["cache_len"] = cache_len
    return ArmContext(inputs=prompts[batches[0]], task=task, threads=threads, device=device, log=log, options=options)


# --- quality on the timed weights, through the timed path --------------------------------------------------------


def _reference_logits(ctx: ArmContext) -> torch.Tensor:
    """The fp32 parent's eager next-token logits on the quality sequences (made once per run)."""
    if "ref_logits" not in ctx.cache:
        with torch.inference_mode():
            ids = ctx.options["quality_ids"].to(ctx.device)
            ctx.cache["ref_logits"] = ctx.options["model"](input_ids=ids).logits[:, :-1].float().cpu()
    return ctx.cache["ref_logits"]


def _quality(ctx: ArmContext, scorer, path: str | None = None, rows: int = 1):
    """``scorer(ids [rows, T]) -> logits [rows, T - 1, V]`` over the quality sequences, ``rows`` at a time (the last
    group padded with copies of its last sequence, whose logits are dropped), as a QualityResult (see the module doc);
    ``extra["scored_by"]`` names the path: ``path``, or the one the scorer reports when it returns ``(logits, path)``
    (a scorer that finds out which path ran). A compiled arm scores at the batch size it compiled first
    (:func:`decode_context`'s ``compile_batches``): the graph that is timed, and no graph compiled for quality alone."""
    import numpy as np

    from workbench.util.stats import bootstrap_ci
    from workbench.tasks.base import QualityResult

    ids = ctx.options["quality_ids"]
    scored, paths = [], []
    with torch.inference_mode():
        for i in range(0, ids.shape[0], rows):
            group = ids[i:i + rows]
            real = group.shape[0]
            group = torch.cat([group, group[-1:].expand(rows - real, -1)]) if real < rows else group
            out = scorer(group.to(ctx.device))
            logits, ran = out if isinstance(out, tuple) else (out, path)
            scored.append(logits[:real].float().cpu())
            paths.append(ran)
    logits = torch.cat(scored)
    path = "; ".join(dict.fromkeys(paths))     # one path, unless a sequence ran another one (then both are named)
    if ctx.options["quality"] == "perplexity":
        nll = -torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None])[..., 0].sum(1).double().numpy()
        pairs = np.stack([nll, np.full(len(nll), ids.shape[1] - 1.0)], axis=1)

        def ppl(p):
            return float(np.exp(p[:, 0].sum() / p[:, 1].sum()))

        low, high = bootstrap_ci(pairs, statistic=ppl)
        return QualityResult("perplexity", ppl(pairs), low, high, len(pairs), higher_is_better=False,
                             extra={"scored_by": path}, per_example=tuple(map(tuple, pairs)))
    ref = _reference_logits(ctx)
    match = (logits.argmax(-1) == ref.argmax(-1)).double().flatten().numpy() * 100.0
    kl = torch.nn.functional.kl_div(torch.log_softmax(logits, -1), torch.log_softmax(ref, -1), log_target=True,
                                    reduction="none").sum(-1)
    low, high = bootstrap_ci(match)
    return QualityResult("top1_agreement_pct", float(match.mean()), low, high, len(match),
                         extra={"kl_vs_fp32": round(float(kl.mean()), 6), "scored_by": path},
                         per_example=tuple(match))


def _eager_scorer(model):
    return lambda ids: model(input_ids=ids).logits[:, :-1]


# --- builds -------------------------------------------------------------------------------------------------------


def _variant_model(ctx: ArmContext, precision: str):
    """The fp32 parent, its bf16 copy, its bf16-weights copy (fp32 activations) or its weight-only int8 / int4 copy
    (made once per run, shared by the HF and the fast-loop arm of the same weights)."""
    if precision == "fp32":
        return ctx.options["model"]
    if precision not in ctx.cache:
        if precision == "bf16":
            ctx.cache[precision] = copy.deepcopy(ctx.options["model"]).to(torch.bfloat16)
        elif precision == "bf16w":
            from workbench.steps.bf16_weights import bf16_weights

            ctx.cache[precision] = bf16_weights(copy.deepcopy(ctx.options["model"]))
        else:
            from workbench.steps.weight_only import apply_weight_only

            bits = 8 if precision == "int8" else 4
            ctx.cache[precision] = apply_weight_only(copy.deepcopy(ctx.options["model"]), bits, 128)
    return ctx.cache[precision]


def _request(ctx: ArmContext, generate, batch: int | None = None):
    """The zero-argument timed call: one whole request at ``batch`` (default: the context's first batch size).
    With ``options["prompt_list"]`` (batch-1 prompts), the k-th call takes the k-th prompt (every arm walks them in
    step: ``measure.interleaved.cycling``)."""
    from workbench.measure.interleaved import cycling

    new = ctx.options["new"]
    if ctx.options.get("prompt_list") and (batch or ctx.options["batches"][0]) == 1:
        call = cycling(lambda ids: generate(ids, new), ctx.options["prompt_list"])
    else:
        ids = ctx.options["prompts"][batch or ctx.options["batches"][0]]
        call = lambda: generate(ids, new)  # noqa: E731
    call.at_batch = lambda b: _request(ctx, generate, b)   # the same request at another of the context's batches
    return call


def _meta(ctx: ArmContext, model, static_cache_len, notes: str, weight_bytes: int | None = None, **extra) -> dict:
    from workbench.runtime.kv_budget import decode_weight_bytes, kv_bytes_per_position, resident_weight_bytes

    return {"weight_bytes_per_step": int(decode_weight_bytes(model) if weight_bytes is None else weight_bytes),
            "resident_weight_bytes": int(resident_weight_bytes(model)) if weight_bytes is None else None,
            "kv_bytes_per_position": kv_bytes_per_position(model), "static_cache_len": static_cache_len,
            "notes": notes, **extra}


def _hf(precision: str, static_compile: bool = False):
    def build(ctx: ArmContext) -> BuiltArm:
        from workbench.decoding.fast_loop import hf_generate, hf_static_compile_score

        model = _variant_model(ctx, precision)
        kernel = getattr(model, "weight_only", {}).get("kernel")
        notes = ("HF generate, static cache + torch.compile" if static_compile
                 else "HF generate (dynamic cache), eager")
        notes += f" on {kernel}" if kernel else f", {precision}"

        def generate(ids, new):
            return hf_generate(model, ids, new, notes=notes, static_compile=static_compile)

        meta = _meta(ctx, model, ctx.options["prompts"][ctx.options["batches"][0]].shape[1] + ctx.options["new"]
                     if static_compile else None, notes)
        if static_compile:   # compile before any clock: the first call builds the graph (time reported apart), at
            start = time.perf_counter()   # the timed length: HF sizes its static cache to prompt + new tokens
            for b in ctx.options["compile_batches"]:
                generate(ctx.options["prompts"][b], ctx.options["new"])
            meta["compile_seconds"] = round(time.perf_counter() - start, 2)
        if static_compile:   # HF's own generate, teacher forced: its compiled decode forward gives the logits
            scorer, path = (lambda ids: hf_static_compile_score(model, ids)), None
        else:
            scorer, path = _eager_scorer(model), "eager forward on the same weights (the timed path)"
        return BuiltArm(call=_request(ctx, generate), quality=lambda: _quality(ctx, scorer, path), meta=meta)
    return build


def _fast_loop(precision: str):
    def build(ctx: ArmContext) -> BuiltArm:
        from workbench.decoding.fast_loop import FastDecoder

        model = _variant_model(ctx, precision)
        dec = FastDecoder(model, max_batch_size=max(ctx.options["batches"]), max_cache_len=ctx.options["cache_len"],
                          compile=ctx.options["compile"], **ctx.options["fast_loop_options"])
        start = time.perf_counter()
        for b in ctx.options["compile_batches"]:   # one graph per batch size, compiled before any clock runs
            dec.generate(ctx.options["prompts"][b], 2)
        ctx.log(f"  {precision} fast loop ready in {time.perf_counter() - start:.1f}s "
                f"(compile {dec.compile_seconds:.1f}s): {dec.label}")
        kernel = getattr(model, "weight_only", {}).get("kernel")
        notes = dec.label + (f" on {kernel}" if kernel else "")
        if dec.reason:
            notes += f" ({dec.reason})"
        meta = _meta(ctx, model, ctx.options["cache_len"], notes, compile_seconds=round(dec.compile_seconds, 2),
                     compiled=dec.compiled)
        return BuiltArm(call=_request(ctx, dec.generate),
                        quality=lambda: _quality(ctx, dec.score, f"{dec.label}: prefill + the timed decode step",
                                                 rows=ctx.options["compile_batches"][0] if dec.compiled else 1),
                        meta=meta)
    return build


def _kv_int8(ctx: ArmContext) -> BuiltArm:
    from workbench.decoding.kv_quant import quantized_cache_generate, quantized_cache_score

    model = ctx.options["model"]
    meta = _meta(ctx, model, None, "int8 KV cache, own greedy loop (eager)")
    meta["kv_bytes_per_position"] = None   # int8 codes + scales: see the KV budget table, not the fp32 formula
    return BuiltArm(call=_request(ctx, lambda ids, new: quantized_cache_generate(model, ids, new, 8)),
                    quality=lambda: _quality(ctx, lambda ids: quantized_cache_score(model, ids, 8),
                                             "teacher forced through the int8 KV cache"),
                    meta=meta)


def _onnx_files(ctx: ArmContext) -> dict:
    """The ORT arms' files, made once per run: the KV-cache export and its MatMulNBits int8 / int4."""
    if "onnx" in ctx.cache:
        return ctx.cache["onnx"]
    from workbench.core import Variant, apply
    from workbench.runtime.torch_runner import TorchRunner
    from workbench.steps.export_onnx import ExportOnnxConfig
    from workbench.steps.weight_only_onnx import WeightOnlyOrtConfig, onnx_weight_bytes

    model = ctx.options["model"]
    base = Variant(name="torch-fp32", task="llama-random", backend="torch", device="cpu", precision="fp32",
                   runner=TorchRunner(model, "cpu", ("input_ids",), ctx.threads), model=model)
    start = time.perf_counter()
    fp32 = apply(base, ExportOnnxConfig(batch_sizes=(1, 2, 3), seq_lens=(4, 8, 16), out_dir=ctx.options["out"],
                                        threads=ctx.threads))
    ctx.log(f"  ONNX export with KV cache in {time.perf_counter() - start:.1f}s")
    files = {"fp32": (str(fp32.artifact_path), onnx_weight_bytes(fp32.artifact_path))}
    for bits in (8, 4):
        v = apply(fp32, WeightOnlyOrtConfig(bits=bits, block_size=32, out_dir=ctx.options["out"], threads=ctx.threads))
        files[f"int{bits}"] = (str(v.artifact_path), v.meta["weight_only"]["weight_bytes_per_step"])
    ctx.cache["onnx"] = files
    return files


def _ort(precision: str):
    def build(ctx: ArmContext) -> BuiltArm:
        from workbench.decoding.fast_loop import DecodeResult, StepClock
        from workbench.runtime.ort import OrtRunner

        path, weight_bytes = _onnx_files(ctx)[precision]
        runner = OrtRunner(path, "cpu", ctx.threads)
        cpu = torch.device("cpu")

        def generate(ids, new):
            steps = StepClock(cpu)
            tokens = runner.generate_greedy(ids, new, on_token=steps.mark)
            times = steps.times()
            return DecodeResult(tokens, steps.start, times, [1] * len(times), notes=notes)

        notes = f"ONNX Runtime, KV cache, {precision} weights, {runner.threads} threads"
        meta = _meta(ctx, ctx.options["model"], None, notes, weight_bytes=weight_bytes)
        return BuiltArm(call=_request(ctx, generate), meta=meta,
                        quality=lambda: _quality(ctx, lambda ids: runner({"input_ids": ids})[:, :-1],
                                                 "the same ONNX file (prefill graph)"))
    return build


def _llama_cpp(outtype: str):
    def build(ctx: ArmContext) -> BuiltArm:
        from workbench.decoding.llama_cpp import LlamaCppDecoder, export_gguf
        from workbench.runtime.kv_budget import kv_bytes_per_position
        from workbench.tasks.causal_lm import DEMO_TARGET_DIR
        from workbench.util.files import artifacts_root

        model = ctx.options["model"]
        # the model's own tokenizer (a task's folder), else the demo LM's 4096-id BPE (the random-weight benchmark)
        tokenizer = getattr(ctx.task, "model_dir", None) or DEMO_TARGET_DIR
        start = time.perf_counter()
        out = Path(ctx.options["out"] or artifacts_root() / "gguf") / f"llama-cpp-{outtype}"
        path = export_gguf(model, tokenizer, out, outtype)
        convert = time.perf_counter() - start
        dec = LlamaCppDecoder(path, ctx.options["cache_len"], ctx.threads or torch.get_num_threads())
        ctx.log(f"  GGUF {outtype} written in {convert:.1f}s: {path}")
        # bytes a step reads: every tensor but the embedding lookup; llama.cpp's converter keeps 1-d tensors (norms)
        # in f32 and writes matrices in ``outtype``
        size = {"f32": 4, "bf16": 2}[outtype]
        lookup = model.get_input_embeddings().weight
        tied = lookup is model.get_output_embeddings().weight
        weight_bytes = sum(p.numel() * (size if p.dim() > 1 else 4) for p in model.parameters()
                           if tied or p is not lookup)
        kv = kv_bytes_per_position(model)   # llama.cpp's KV cache is f16 by default: half of fp32's
        meta = _meta(ctx, model, None, dec.label + ", greedy argmax of llama.cpp's logits, f16 KV cache",
                     weight_bytes=weight_bytes, convert_seconds=round(convert, 2), gguf_bytes=path.stat().st_size)
        meta["kv_bytes_per_position"] = kv // 2 if kv else None
        meta["max_batch"] = 1   # llama-cpp-python's Llama decodes one sequence per context
        return BuiltArm(call=_request(ctx, dec.generate), meta=meta, close=dec.close,
                        quality=lambda: _quality(ctx, dec.score, "llama.cpp's own logits (llama-cpp-python eval), "
                                                                 "teacher forced one token per eval as timed"))
    return build


def _skip_reasons(names, compile: bool, device: str = "cpu", batch: int = 1, emulated_bf16: bool = False) -> dict:
    """Why an arm cannot run here (naming the ISA / device / library fact), per name; absent when it runs."""
    import importlib.util

    from workbench.decoding import llama_cpp
    from workbench.runtime.cpu import isa_summary, native_bf16

    out = {}
    native, why = native_bf16(isa_summary()) if device == "cpu" else (True, "")
    missing_llama_cpp = llama_cpp.unavailable()
    for name in names:
        if name.startswith("ort-") and device != "cpu":
            out[name] = f"the ORT arms run on CPU here (device {device})"
        elif name.startswith("llama-cpp-") and (missing_llama_cpp or device != "cpu" or batch != 1):
            out[name] = missing_llama_cpp or (f"the llama.cpp arms run on CPU here (device {device})"
                                              if device != "cpu" else "llama-cpp-python's Llama decodes one "
                                              f"sequence: batch 1 only (this run: batch {batch})")
        elif name in BF16_COMPUTE and not native and not emulated_bf16:
            out[name] = f"{why}: slower than fp32, so not run"
        elif name.startswith("ort-") and importlib.util.find_spec("onnxruntime") is None:
            out[name] = "onnxruntime is not installed here: pip install onnxruntime"
        elif name == "hf-static-compile-fp32" and not compile:
            out[name] = "--no-compile: HF's compiled static-cache path is left out"
        elif name.endswith("-wo"):
            from workbench.steps import weight_only

            bits = 8 if "int8" in name else 4
            try:   # a tiny probe layer: the kernel for these bits runs here, or the reason it does not
                weight_only.check_kernel(bits, 128, device)
            except weight_only.WeightOnlyUnavailable as exc:
                out[name] = str(exc)
    return out


def llm_arms(names=None, compile: bool = True, device: str = "cpu", batch: int = 1,
             emulated_bf16: bool = False) -> list[Arm]:
    """The LLM decode arms ``names`` (default :data:`BENCHMARK_ARMS`; HF generate fp32, the baseline, always first),
    with the skip reasons of ``device`` and requests of ``batch`` prompts. ``emulated_bf16``: run the bf16 arms on a
    CPU without bf16 hardware too (a plumbing check such as ``gpu_check --cpu``, where speed is not the point)."""
    names = list(names or BENCHMARK_ARMS)
    unknown = [n for n in names if n not in LLM_ARMS]
    if unknown:
        raise ValueError(f"unknown LLM arm(s) {unknown}: choose from {', '.join(LLM_ARMS)}")
    if BASELINE not in names:
        names.insert(0, BASELINE)
    builds = {"hf-generate-fp32": _hf("fp32"), "hf-static-compile-fp32": _hf("fp32", static_compile=True),
              "fast-loop-fp32": _fast_loop("fp32"), "fast-loop-bf16": _fast_loop("bf16"),
              "fast-loop-bf16w": _fast_loop("bf16w"),
              "hf-generate-bf16": _hf("bf16"), "hf-int8-wo": _hf("int8"), "fast-loop-int8-wo": _fast_loop("int8"),
              "hf-int4-wo": _hf("int4"), "fast-loop-int4-wo": _fast_loop("int4"), "hf-kv-int8": _kv_int8,
              "ort-fp32-kv": _ort("fp32"), "ort-int8-matmulnbits": _ort("int8"), "ort-int4-matmulnbits": _ort("int4"),
              "llama-cpp-f32": _llama_cpp("f32"), "llama-cpp-bf16": _llama_cpp("bf16")}
    skips = _skip_reasons(names, compile, device, batch, emulated_bf16)
    # records: the runner keeps each request's DecodeResult (ctx.cache["results"][name], warm-up calls first, sent
    # back from an arm's own process too), so the request metrics come from the very calls it timed
    return [Arm(n, LLM_ARMS[n][0], builds[n], skips.get(n), baseline=n == BASELINE, notes=LLM_ARMS[n][1],
                records=True) for n in LLM_ARMS if n in names]


def recipe(small: bool, prompt: int, new: int, names, compile: bool, threads: int, out, batches=(1,),
           vocab: int | None = None, fast_loop_options: dict | None = None):
    """``arms.runner`` recipe for ``isolate=True``: the same model (seeded), context and arms in an arm's own
    process."""
    torch.set_num_threads(threads)
    ctx = decode_context(random_llama(small, vocab), prompt, new, batches, compile, threads=threads, out=out,
                         fast_loop_options=fast_loop_options)
    return llm_arms(names, compile, batch=batches[0]), ctx


def demo_lm_perplexity(name: str, blocks: int | None = None, threads: int | None = None,
                       log=lambda message: None) -> dict:
    """The technique of arm ``name`` on the demo LM (trained weights): its perplexity increase (%) over HF fp32,
    paired over the same blocks, each scored through its own arm's path (a fast loop eager here: the same quantised
    weights and maths as its compiled graph, without minutes of compiling a second model)."""
    from workbench.tasks import get_task

    if name == BASELINE:
        return {"ppl_increase_pct": 0.0, "ppl_increase_ci_pct": [0.0, 0.0], "note": "the baseline itself"}
    task = get_task("causal-lm")
    ctx = decode_context(task.baseline().model, prompt=8, new=2, compile=False, quality="perplexity", task=task,
                         ppl_blocks=blocks, threads=threads, log=log)
    arms = {a.name: a for a in llm_arms([name], compile=False)}
    if arms[name].skip_reason:
        return {"ppl_increase_pct": None, "note": f"not measured: {arms[name].skip_reason}"}
    quality = {}
    for n in (BASELINE, name):
        try:
            built = arms[n].build(ctx)
        except Exception as exc:  # noqa: BLE001 - the demo LM is a second model: a build failure there is a note
            return {"ppl_increase_pct": None, "note": f"not measured: {n} on the demo LM: {type(exc).__name__}: "
                                                      f"{str(exc)[-300:]}"}
        try:
            quality[n] = built.quality()
        finally:
            built.release()
    out = ppl_increase(quality[BASELINE], quality[name])
    out["note"] = f"{name}'s technique on the demo LM ({task.name}), scored through its own arm's path, eager"
    return out


def ppl_increase(base_quality, quality) -> dict:
    """Perplexity increase (%) of ``quality`` over ``base_quality`` (perplexity QualityResults on the same blocks),
    with its paired bootstrap 95% CI over blocks."""
    import numpy as np

    from workbench.util.stats import measurable, paired_bootstrap_ratio

    a, b = np.asarray(quality.per_example), np.asarray(base_quality.per_example)

    def ppl(p):
        return float(np.exp(p[:, 0].sum() / p[:, 1].sum()))

    ratio, low, high = paired_bootstrap_ratio(a, b, statistic=ppl)
    return {"perplexity": round(ppl(a), 4), "parent_perplexity": round(ppl(b), 4),
            "ppl_increase_pct": round(100 * (ratio - 1), 3),
            "ppl_increase_ci_pct": [round(100 * (low - 1), 3), round(100 * (high - 1), 3)],
            "ppl_change_measurable": measurable(low - 1, high - 1), "n_blocks": len(a)}


READ_REFERENCE = "read-bandwidth (reference)"


def read_reference(ctx: ArmContext) -> dict:
    """The reference call a decode run times beside its arms: ``{READ_REFERENCE: ReadProbe}`` on the run's device
    (see :class:`workbench.measure.roofline.ReadProbe`); pass it as ``references`` to ``compare`` / ``time_arms``."""
    from workbench.measure.roofline import ReadProbe

    return {READ_REFERENCE: ReadProbe(ctx.device)}


def read_bandwidth_of_run(run, references: dict, ctx: ArmContext) -> dict:
    """The device's read bandwidth during ``run`` (a TimedRun whose rounds timed ``references``): ``read_gb_per_s``
    from the reference's median call, the peak MBU divides by; and ``read_gb_per_s_best``, the best of 10 reads
    measured once apart from the run (what the MBU figures used before; kept beside it)."""
    from workbench.measure.roofline import run_read_bandwidth

    best = run_read_bandwidth(ctx.device, ctx.threads or torch.get_num_threads())
    timing = run.reference.get(READ_REFERENCE)
    if timing is None:   # the reference crashed (out of memory?): the once-measured peak, and say so
        return {"read_gb_per_s": round(best, 2), "read_gb_per_s_best": round(best, 2),
                "read_measured": f"best of 10 reads apart from the run ({run.errors.get(READ_REFERENCE)})"}
    return {"read_gb_per_s": round(references[READ_REFERENCE].gb_per_s(timing.p50_ms), 2),
            "read_gb_per_s_best": round(best, 2), "read_measured": f"median of {timing.n_calls} reference calls "
            "timed in the arms' interleaved rounds"}


def measure_llm_arms(arms: list, ctx: ArmContext, rounds: int, measure_quality: bool = True) -> list[dict]:
    """Build, time (the one runner: equal warm-up, rotated order) and score ``arms`` without picking one: a row per
    arm with the request metrics of its timed calls, the roofline, and its quality on its own weights (perplexity
    increase % vs the baseline where ``ctx`` measures perplexity). For panels, which show every arm."""
    from workbench.arms.rows import FAILED, MEASURED, arm_row
    from workbench.arms.runner import build_arms, time_arms

    prepared = build_arms(arms, ctx)
    references = read_reference(ctx)
    try:
        run = time_arms(prepared.built, rounds=rounds, calls_per_turn=1, warmup=1, shuffle_seed=None,
                        threads=ctx.threads, device=ctx.device, references=references)
        qualities, rows = {}, []
        for arm in arms:
            if arm.name in prepared.not_run:
                rows.append(arm_row(arm, *prepared.not_run[arm.name]))
            elif arm.name in run.errors:
                rows.append(arm_row(arm, FAILED, f"crashed while timed: {run.errors[arm.name]}"))
            else:
                built = prepared.built[arm.name]
                if measure_quality and built.quality is not None:
                    qualities[arm.name] = built.quality()
                rows.append(arm_row(arm, MEASURED, timing=run.timing[arm.name],
                                    baseline_timing=run.timing.get(BASELINE),
                                    first_ms=run.first_ms.get(arm.name), quality=qualities.get(arm.name),
                                    base_quality=qualities.get(BASELINE), meta=built.meta))
    finally:
        prepared.close()
    base_q = qualities.get(BASELINE)
    for row in rows:
        q = qualities.get(row["arm"])
        if q is not None and base_q is not None and q.metric == "perplexity" and row["arm"] != BASELINE:
            row.update(ppl_increase(base_q, q))
        row["available"] = row["status"] == MEASURED
    batch = ctx.options["batches"][0]
    request_rows(rows, ctx.cache.get("results", {}), run.warmup, ctx.options["prompts"][batch].shape[1],
                 ctx.options["new"], read_bandwidth_of_run(run, references, ctx)["read_gb_per_s"], batch)
    return rows


# --- rows: request metrics and the roofline from the timed calls ---------------------------------------------------


def request_rows(rows: list[dict], results: dict, warmup: int, prompt: int, new: int, peak_read_gb_s: float | None,
                 batch: int = 1) -> None:
    """Add to each measured row: request metrics from its timed selection-run calls (``results``: name -> every
    DecodeResult in call order, warm-up first; the same calls whose time is the row's), output tokens/s, token
    agreement with HF on the same prompts, and the roofline with the bytes that arm reads per decode step."""
    from workbench.measure.request_metrics import request_metrics
    from workbench.measure.roofline import decode_call_bytes, roofline_columns

    ref = results.get(BASELINE, [])[warmup:]
    for row in rows:
        timed = [r for r in results.get(row["arm"], [])[warmup:warmup + (row.get("n_calls") or 0)]
                 if hasattr(r, "requests")]
        if not timed:
            continue
        m = request_metrics([req for r in timed for req in r.requests()])
        row.update(m)
        row["tokens_per_s"] = round(batch * new / (row["p50_ms"] / 1e3), 2) if row.get("p50_ms") else None
        # each phase's own pace (what a bill adds up, from means): prompt tokens / TTFT, output tokens / TPOT
        row["prompt_tokens_per_s"] = round(batch * prompt / (m["ttft_ms_mean"] / 1e3), 2)
        row["output_tokens_per_s"] = round(batch * 1e3 / m["tpot_ms_mean"], 2) if m["tpot_ms_mean"] else None
        row["throughput_per_s"] = round(1e3 / m["e2e_ms_mean"], 4)      # requests/s, one after another
        if ref:
            same = [float((a.tokens[:, prompt:] == b.tokens[:, prompt:]).float().mean()) for a, b in zip(timed, ref)]
            row["token_agreement_vs_hf"] = round(sum(same) / len(same), 4) if same else None
        kv = row.get("kv_bytes_per_position")
        tpot = row.get("tpot_ms_p50")
        if peak_read_gb_s and tpot and kv is not None and row.get("weight_bytes_per_step"):
            positions = row.get("static_cache_len") or (prompt + new / 2)
            step = decode_call_bytes(row["weight_bytes_per_step"], kv, positions, batch)
            # decode steps/s from the same calls' TPOT; a step makes ``batch`` tokens
            row.update(roofline_columns(step / batch, batch * 1e3 / tpot, peak_read_gb_s))


__all__ = ["LLM_ARMS", "BENCHMARK_ARMS", "BASELINE", "llm_arms", "decode_context", "random_llama", "recipe",
           "request_rows", "demo_lm_perplexity", "measure_llm_arms", "ppl_increase", "READ_REFERENCE",
           "read_reference", "read_bandwidth_of_run"]
