"""A fast greedy decode loop: a preallocated (static) KV cache and ``torch.compile`` of the one-token step.

HF ``generate`` grows a dynamic cache and runs many small Python-side steps per token (logits processors, stopping
criteria, cache bookkeeping). Here the cache is a transformers ``StaticCache`` (fixed shape [B, heads, max_cache_len,
head_dim], so the step's shapes never change), the prompt is prefilled eagerly in one call, and every decode step
is one call of a compiled function ``(token [B, 1], cache_position [1]) -> next token [B]``: inductor on CPU,
``mode="reduce-overhead"`` (CUDA graphs) on CUDA. On CPU the weights are frozen into the graph (inductor
``freezing``, switched on while the step is traced: :func:`first_compile`): they become constants that inductor
folds and prepacks for its CPU GEMM kernels (fp32 12 x 768 Llama, 2-core AMX Xeon, four side-by-side probes: the
frozen step 0-9% faster than the same step reading its weights as graph inputs). The price: a weight changed after
the first ``generate`` is not seen (build a new decoder), and compile takes longer. Not frozen: GEMV steps (below)
and weights stored narrower than they are computed in (:func:`freezable`). ``cache_position`` is a tensor, so a
new position is new data, not a new graph: one graph per batch size (check with
``torch._dynamo.utils.counters["stats"]["unique_graphs"]``).

Each batch size compiles its own copy of the step: a new code object, because dynamo keeps graphs per code object
(two ``torch.compile`` calls on one function would share them). Before every call dynamo checks the graph's guards
(every weight, module attribute and cache tensor): ~1.2 ms of a ~8 ms step on the 134M int4 decoder. A per-batch
copy is only ever called with its own cache, token shape and dtype, under ``inference_mode``, and the decoder
already assumes the model does not change (frozen steps hold its weights as constants), so on CPU it runs
guard-free (``torch.compiler.skip_all_guards_unsafe``): decode 115 -> 140 tok/s on that decoder. What is left of
the Python side is the graph's own wrapper, one Python call per kernel or GEMM (~160 a step for a 12-layer Llama):
``cpp_wrapper=True`` makes those calls from C++ (~10% of the fp32 12 x 768 step, for ~1.5x the compile time).

bf16 / fp16 weights on CPU at batch 1: each matmul of the step is a GEMV (one row times the weight), and the aten
kernel (oneDNN) runs it far below the bandwidth: on a 2-core AMX Xeon (12 x 768 Llama) the bf16 step, reading 176 MB,
took longer than the fp32 step reading 352 MB (28.9 vs 22.8 ms). The batch-1 step is therefore compiled with
inductor's own GEMV: its ``decompose_mm_pass`` rewrites each ``mm`` into a multiply + sum that inductor fuses into
one vectorised reduction reading the bf16 weights once (accumulating in fp32), and weight prepacking is off (the
pass matches the plain ``mm`` that prepacking would replace). Side by side with the prepacked step, the bf16 step
ran 1.46-1.63x faster (``gemv_kernels``). It is still not at the bandwidth: inductor's kernel keeps one
accumulator chain per output row. fp32 stays on aten's kernel (the same change measured 1.00x there), and so do
other batch sizes. With ``gemm_template=True`` (see :func:`compile_private`) the batch-1 bf16 step is frozen and its
matmuls autotuned against inductor's C++ GEMM template instead of the GEMV.

Compilation happens before the clock starts (a warm-up on a dummy token for each new batch size) and is reported
apart in ``compile_seconds``. Output is greedy and token-identical to HF ``model.generate(do_sample=False)``; no EOS
stop, no padding (every prompt in a batch has the same length), exactly ``max_new_tokens`` new tokens.

A model whose class does not declare full-graph compile support with a static cache (HF ``_can_compile_fullgraph``)
is ``supported=False`` with the ``reason``; :meth:`FastDecoder.generate` then runs HF ``generate`` and its result
says so in ``notes``. A compile that fails at warm-up falls back to the same static-cache loop uncompiled, with
``compiled=False`` and the error in ``reason``, never under the compiled label.

Example:
    >>> dec = FastDecoder(model, max_batch_size=1, max_cache_len=256)          # doctest: +SKIP
    >>> res = dec.generate(ids, max_new_tokens=128); res.tokens.shape, dec.compile_seconds
"""
from __future__ import annotations

import contextlib
import time
import types
from dataclasses import dataclass, field

import torch

from workbench.decoding.lm import clock, last_logits_only, model_device


@dataclass
class DecodeResult:
    """One batch's generation: tokens [B, prompt + new] and when each decode step made its tokens.

    ``start`` is ``time.perf_counter()`` before the prefill; ``emit_times[i]`` when step i's tokens existed (CPU: the
    clock after the step; CUDA: a CUDA event recorded after the step, mapped onto the same clock, so no per-token sync
    stalls the GPU), ``emit_counts[i]`` the tokens each request got at that step (1 here: plain decoding).
    The first emission comes from the prefill call, so ``emit_times[0] - start`` is the time to first token.
    """

    tokens: torch.Tensor
    start: float
    emit_times: list = field(default_factory=list)
    emit_counts: list = field(default_factory=list)
    notes: str = ""

    def requests(self) -> list:
        """This call as ONE timing sample for :func:`workbench.measure.request_metrics.request_metrics`:
        ``[(start, emit_times, emit_counts, sequences)]``. A batch of B prompts shares one clock, so it is one sample
        carrying B sequences (their tokens count in the throughput), never B copies of the same times (which would
        fake a sample count: a p99 from 25 calls of batch 8)."""
        return [(self.start, self.emit_times, self.emit_counts, self.tokens.shape[0])]


def unsupported_reason(model) -> str:
    """Why the fast loop cannot run ``model`` ("" when it can)."""
    if not hasattr(model, "config") or not hasattr(model, "get_output_embeddings"):
        return f"{type(model).__name__} is not a Hugging Face causal LM (no config / output embeddings)"
    # False: the class says it cannot; an attribute gone in a later transformers is not a refusal (compile is tried,
    # and a failure at warm-up is reported)
    if getattr(type(model), "_can_compile_fullgraph", None) is False:
        return (f"{type(model).__name__} does not declare static-cache full-graph support in this transformers "
                "version (_can_compile_fullgraph is False)")
    if getattr(model.config, "is_encoder_decoder", False):
        return f"{type(model).__name__} is an encoder-decoder: the fast loop runs decoder-only LMs"
    return ""


class StepClock:
    """Emission times without stalling the device: CUDA events recorded in the stream (read once at the end), or
    ``perf_counter`` on CPU. A host sync per token would stop the CPU queueing the next step (costly at ~1 ms/step)."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.start = clock(device)
        self._marks: list = []
        if self.cuda:
            self._origin = torch.cuda.Event(enable_timing=True)
            self._origin.record()

    def mark(self) -> None:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self._marks.append(event)
        else:
            self._marks.append(time.perf_counter())

    def times(self) -> list:
        """perf_counter-based time of every mark (waits for the device once)."""
        if not self.cuda:
            return list(self._marks)
        torch.cuda.synchronize()
        return [self.start + self._origin.elapsed_time(e) / 1e3 for e in self._marks]


def static_cache(model, max_cache_len: int):
    """An empty transformers ``StaticCache`` of ``max_cache_len`` positions for ``model`` (fixed shapes: one graph)."""
    from transformers import StaticCache

    return StaticCache(config=model.config, max_cache_len=max_cache_len)


GEMV_DTYPES = (torch.bfloat16, torch.float16)
GEMV_MAX_DIM = 1 << 20   # inductor decomposes a batch-1 mm only up to 2048 wide by default: any layer of an LLM here


def freezable(model) -> bool:
    """Whether inductor freezing can fold ``model``'s weights as they are stored: every floating-point parameter in
    the model's dtype. A weight stored narrower than it is computed in (``steps.bf16_weights``: bf16 weights cast to
    fp32 activations) would have its cast folded into a wider constant, and the step would read fp32 bytes again
    (measured: 22.7 ms a step frozen, 15.9 ms not, 12 x 768 Llama)."""
    dtype = getattr(model, "dtype", None)
    return all(p.dtype == dtype for p in model.parameters() if p.dtype.is_floating_point)


def gemv_kernels(model, device: torch.device, batch: int) -> bool:
    """Whether the ``batch`` step of ``model`` is compiled with inductor's GEMV (see the module doc): a batch-1 step
    on CPU with bf16 / fp16 weights."""
    return device.type == "cpu" and batch == 1 and getattr(model, "dtype", None) in GEMV_DTYPES


@contextlib.contextmanager
def first_compile(frozen: bool, gemv: bool = False):
    """Around the first call of a :func:`compile_private` step (the call that traces and compiles it): inductor's
    ``freezing`` on when ``frozen``, and with ``gemv`` the GEMV width limit lifted (:func:`gemv_width_limit`).

    Freezing is set in the global config, not in ``torch.compile(options=...)``: dynamo decides whether a module's
    weights become graph constants (frozen) or graph inputs while it *traces*, from the global flag, and the options
    only reach inductor afterwards. Passed as an option alone, the weights stayed graph inputs: nothing was frozen or
    prepacked, though the flag was set (torch 2.13). The step is guard-free and is never traced again, so the flag
    is needed only here."""
    from torch._inductor import config as inductor_config

    width = gemv_width_limit() if gemv else contextlib.nullcontext()
    with inductor_config.patch(freezing=frozen), width:
        yield


@contextlib.contextmanager
def gemv_width_limit(limit: int = GEMV_MAX_DIM):
    """Lift inductor's width limit for decomposing a batch-1 ``mm`` (a module global of its pass, read when a graph
    compiles) while the graphs compiled inside the block are built; an inductor without that pass is left as is."""
    try:
        from torch._inductor.fx_passes import decompose_mem_bound_mm as pass_module
    except ImportError:
        pass_module = None
    before = getattr(pass_module, "cpu_max_other_dimension_decomposition", None)
    if before is None:
        yield
        return
    pass_module.cpu_max_other_dimension_decomposition = max(before, limit)
    try:
        yield
    finally:
        pass_module.cpu_max_other_dimension_decomposition = before


def compile_private(fn, owner, name: str, device: torch.device, frozen: bool, gemv: bool = False,
                    cpp_wrapper: bool = False, gemm_template: bool = False) -> "PrivateStep":
    """``torch.compile`` of a private copy of the plain function ``fn`` bound to ``owner`` (see the module doc).

    Dynamo keeps graphs per code object, whatever ``torch.compile`` call made them: a new code object per call is what
    keeps a guard-free graph from answering another batch size's (or another decoder's) call. CUDA: CUDA graphs
    (host-side guards overlap with the GPU's work). CPU: guard-free, weights frozen in when ``frozen``; ``gemv``:
    batch-1 matmuls as inductor's fused GEMV reductions (:func:`gemv_kernels`); ``cpp_wrapper``: the graph calls its
    kernels and GEMMs from C++ instead of Python (inductor's ``cpp_wrapper``: 12 x 768 Llama fp32 step, 2-core AMX
    Xeon, 18.50 vs 20.36 ms, paired median of 12 rounds), for ~1.5x the compile time, so it is the caller's choice;
    ``gemm_template`` (with ``frozen``): every matmul autotuned between aten's kernel and inductor's own C++ GEMM
    template, which packs the frozen weights for its AMX / AVX-512 micro-kernels (12 x 768 Llama, 2-core AMX Xeon,
    8 rotating rounds, paired medians: the bf16 step 0.72x and 0.98x the GEMV step's time in two probes, 0.88x with
    the C++ wrapper too; fp32 0.93x MKL's packed GEMM), for ~1 minute of autotuning at compile.
    The speculative fast loop (:mod:`workbench.decoding.fast_speculative`) compiles its draft and verify calls
    through this too.
    """
    code = fn.__code__.replace(co_name=name)
    step = types.MethodType(types.FunctionType(code, fn.__globals__, name, fn.__defaults__), owner)
    if device.type == "cuda":
        return PrivateStep(torch.compile(step, fullgraph=True, dynamic=False, mode="reduce-overhead"), False, False)
    options = {"freezing": frozen, "cpp_wrapper": cpp_wrapper}   # freezing: dynamo's side is first_compile's flag
    if gemm_template and frozen:   # the template packs constant weights: frozen steps only
        options.update({"max_autotune": True, "max_autotune_gemm_backends": "CPP,ATEN"})
    if gemv:
        options.update({"cpp.weight_prepack": False, "post_grad_fusion_options": {"decompose_mm_pass": {}}})
    skip_guards = getattr(torch.compiler, "skip_all_guards_unsafe", None)   # torch >= 2.8
    if skip_guards is not None:
        options["guard_filter_fn"] = skip_guards
    return PrivateStep(torch.compile(step, fullgraph=True, dynamic=False, options=options), frozen, gemv)


class PrivateStep:
    """A :func:`compile_private` step: its first call (the one that traces and compiles) runs inside
    :func:`first_compile` with the ``frozen`` / ``gemv`` it was compiled for, so the pair is stated once."""

    def __init__(self, compiled, frozen: bool, gemv: bool):
        self._compiled, self.frozen, self.gemv = compiled, frozen, gemv
        self._traced = False

    def __call__(self, *args):
        if self._traced:
            return self._compiled(*args)
        with first_compile(self.frozen, self.gemv):
            out = self._compiled(*args)
        self._traced = True
        return out


class FastDecoder:
    """Greedy decoding of ``model`` with a static KV cache and a compiled one-token step (see the module doc).

    Args:
        model: an HF causal LM in eval mode, already on its device and in its dtype (weights are never moved).
        max_batch_size: the largest batch :meth:`generate` takes.
        max_cache_len: prompt + new tokens must fit (the cache is allocated at this length).
        compile: ``torch.compile`` the decode step (False: the same static-cache loop, eager).
        freeze: on CPU, freeze the weights into the compiled steps (see the module doc); None = on when compiling
            on CPU, for weights that fold as stored (:func:`freezable`), in every step but a GEMV one. Ignored on CUDA
            (CUDA graphs already remove the per-step overhead).
        device: where to run; None = the model's device. Must be the model's device (move the model first).
        cpp_wrapper: on CPU, compile the steps with inductor's C++ wrapper (see :func:`compile_private`): a faster
            step for ~1.5x the compile time; worth it for a model that is served or benchmarked, not for a test's.
        gemm_template: on CPU, autotune every matmul of a frozen step between aten and inductor's C++ GEMM template
            (see :func:`compile_private`); a bf16 batch-1 step then takes the template instead of the GEMV. Faster
            steps for ~1 minute more compile on a full-size model; for weights that freeze (:func:`freezable`).
    """

    def __init__(self, model, *, max_batch_size: int, max_cache_len: int, compile: bool = True,
                 device: str | None = None, freeze: bool | None = None, cpp_wrapper: bool = False,
                 gemm_template: bool = False):
        from workbench.tasks.hf_loading import context_length

        if max_batch_size < 1 or max_cache_len < 2:
            raise ValueError(f"max_batch_size={max_batch_size}, max_cache_len={max_cache_len}: need >= 1 and >= 2")
        self.model = model.eval()
        self.device = model_device(model)
        if device is not None and torch.device(device).type != self.device.type:
            raise ValueError(f"model is on {self.device}, device={device!r}: move the model first "
                             f"(model.to({device!r})); the fast loop never moves weights")
        ctx = context_length(model) if hasattr(model, "config") else None
        if ctx is not None and max_cache_len > ctx:
            raise ValueError(f"max_cache_len={max_cache_len} exceeds the model's context of {ctx} tokens: lower it")
        self.max_batch_size, self.max_cache_len, self.compile = max_batch_size, max_cache_len, compile
        self.reason = unsupported_reason(model)
        self.supported = not self.reason
        self.compiled = bool(self.supported and compile)   # cleared by a compile that fails (eager fallback)
        on_cpu = self.compiled and self.device.type == "cpu"
        # frozen steps (see the module doc): on CPU, where the weights fold cleanly (freezable); GEMV steps never
        self.freeze = bool(on_cpu and freeze is not False and freezable(model))
        self._frozen_batches: set = set()
        self.cpp_wrapper = bool(cpp_wrapper and on_cpu)
        self.gemm_template = bool(gemm_template and self.freeze)   # the template packs frozen (constant) weights
        self.compile_seconds = 0.0
        self._caches: dict = {}        # batch size -> StaticCache (its tensors keep their addresses: CUDA graphs)
        self._steps: dict = {}         # batch size -> that batch's compiled step (see _compile_step)

    @property
    def gemv(self) -> bool:
        """Whether a compiled step of this decoder runs inductor's GEMV (see :func:`gemv_kernels`)."""
        return self.compiled and any(self._gemv(batch) for batch in self._steps)

    @property
    def frozen(self) -> bool:
        """Whether a compiled step of this decoder has its weights frozen in (not a GEMV step, not a fallback)."""
        return self.compiled and bool(self._frozen_batches)

    @property
    def label(self) -> str:
        """What actually runs, for a row's variant name."""
        if not self.supported:
            return "hf-generate (fast loop unsupported)"
        if not self.compiled:
            return "fast loop (static cache, eager)"
        frozen = ", frozen weights" if self.frozen else ""
        gemv = ", batch-1 GEMV kernels" if self.gemv else ""
        template = ", autotuned C++ GEMM template" if self.gemm_template and self.frozen else ""
        wrapper = ", C++ wrapper" if self.cpp_wrapper else ""
        return f"fast loop (static cache, compiled{frozen}{gemv}{template}{wrapper})"

    def _decode_step(self, token: torch.Tensor, position: torch.Tensor, cache) -> tuple:
        """token [B, 1], position [1] -> (greedy next token [B], its logits [B, V]); the one function that is
        compiled. The logits come out of the graph anyway (the argmax reads them): returning them lets
        :meth:`score` measure quality through the very graph that is timed."""
        logits = self.model(input_ids=token, cache_position=position, past_key_values=cache, use_cache=True).logits
        last = logits[:, -1]
        return last.argmax(-1), last

    def _prefill(self, ids: torch.Tensor, cache) -> tuple:
        """Eager prompt pass [B, T] into the cache; returns (the first new token [B], its logits [B, V])."""
        positions = torch.arange(ids.shape[1], device=self.device)
        logits = self.model(input_ids=ids, cache_position=positions, past_key_values=cache, use_cache=True,
                            **last_logits_only(self.model)).logits
        return logits[:, -1].argmax(-1), logits[:, -1]

    def _compile_step(self, batch: int):
        """``torch.compile`` of a private copy of :meth:`_decode_step` for one batch size (see the module doc)."""
        # GEMV steps read their stored weights in place (frozen, the first frozen compile of a process would also
        # leave inductor's weight-prepack patterns registered, which then rewrite a later GEMV step back into a
        # prepacked GEMM); every other CPU step is frozen when ``freeze``
        gemv = self._gemv(batch)
        return compile_private(FastDecoder._decode_step, self, f"decode_step_b{batch}", self.device,
                               self.freeze and not gemv, gemv=gemv, cpp_wrapper=self.cpp_wrapper,
                               gemm_template=self.gemm_template)

    def _gemv(self, batch: int) -> bool:
        """Whether the batch's step runs inductor's GEMV: a bf16 / fp16 batch-1 CPU step, unless the GEMM template
        takes it (no slower in any probe, see :func:`compile_private`)."""
        return gemv_kernels(self.model, self.device, batch) and not self.gemm_template

    def _call_step(self, token, position, cache) -> tuple:
        """(next token [B], logits [B, V]) of one decode step, through the compiled graph when compiled."""
        if not self.compiled:
            return self._decode_step(token, position, cache)
        if self.device.type == "cuda":
            torch.compiler.cudagraph_mark_step_begin()   # the last step's output buffer may be overwritten now
            return tuple(t.clone() for t in self._steps[token.shape[0]](token, position, cache))
        return self._steps[token.shape[0]](token, position, cache)

    @torch.inference_mode()   # as generate() runs: a warm-up outside it would compile a graph generate never uses
    def _cache_for(self, batch: int):
        """The batch size's static cache, built and (when compiling) warmed up on first use, outside any timing."""
        if batch in self._caches:
            return self._caches[batch]
        cache = static_cache(self.model, self.max_cache_len)
        self._caches[batch] = cache
        if self.compiled:
            t0 = clock(self.device)
            step = self._steps[batch] = self._compile_step(batch)
            try:
                token, _ = self._prefill(torch.zeros(batch, 1, dtype=torch.long, device=self.device), cache)
                positions = torch.arange(1, 4, device=self.device)   # sliced as generate() slices (same guards)
                for i in range(3):   # the first call compiles; CUDA graph trees record on the 2nd-3rd call
                    token, _ = self._call_step(token[:, None], positions[i:i + 1], cache)
                if step.frozen:
                    self._frozen_batches.add(batch)
            except Exception as err:   # a backend/compiler missing here: run eager, and say so
                self.compiled = False
                self.reason = f"torch.compile failed ({type(err).__name__}: {str(err)[:200]}); running eager"
            self.compile_seconds += clock(self.device) - t0
            cache.reset()
        return cache

    def _check(self, input_ids, max_new_tokens: int) -> torch.Tensor:
        ids = torch.as_tensor(input_ids)
        if ids.dim() != 2 or ids.numel() == 0 or ids.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"input_ids must be integer token ids [B, T], got {tuple(ids.shape)} {ids.dtype}")
        if ids.shape[0] > self.max_batch_size:
            raise ValueError(f"batch {ids.shape[0]} > max_batch_size={self.max_batch_size}: build the decoder "
                             "with a larger max_batch_size")
        if max_new_tokens < 1 or ids.shape[1] + max_new_tokens > self.max_cache_len:
            raise ValueError(f"prompt {ids.shape[1]} + max_new_tokens {max_new_tokens} must be within "
                             f"max_cache_len={self.max_cache_len} (and max_new_tokens >= 1)")
        return ids.long().to(self.device)

    @torch.inference_mode()
    def generate(self, input_ids: torch.Tensor, max_new_tokens: int) -> DecodeResult:
        """Greedy ``max_new_tokens`` after each prompt of ``input_ids`` [B, T]; HF generate when unsupported."""
        ids = self._check(input_ids, max_new_tokens)
        if not self.supported:
            return hf_generate(self.model, ids, max_new_tokens, notes=f"HF generate: {self.reason}")
        batch, prompt = ids.shape
        cache = self._cache_for(batch)
        out = torch.empty(batch, prompt + max_new_tokens, dtype=torch.long, device=self.device)
        out[:, :prompt] = ids
        positions = torch.arange(prompt, prompt + max_new_tokens, device=self.device)
        steps = StepClock(self.device)
        token, _ = self._prefill(ids, cache)
        out[:, prompt] = token
        steps.mark()
        for i in range(1, max_new_tokens):
            token, _ = self._call_step(token[:, None], positions[i - 1:i], cache)
            out[:, prompt + i] = token
            steps.mark()
        times = steps.times()
        cache.reset()   # zeroes in place: the next call starts empty at the same addresses
        return DecodeResult(out, steps.start, times, [1] * len(times), notes=self.label)

    @torch.inference_mode()
    def score(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Next-token logits [B, T - 1, V] of ``input_ids`` [B, T] (teacher forced) through the path
        :meth:`generate` times: the eager prefill for the first token, then the (compiled, frozen) decode step for
        every later one. Quality measured from these logits is the timed arm's own, not an eager stand-in's."""
        ids = self._check(input_ids, 1)
        if not self.supported:   # the fallback is HF generate: its forward is the eager model
            return self.model(input_ids=ids).logits[:, :-1].float()
        cache = self._cache_for(ids.shape[0])
        _, first = self._prefill(ids[:, :1], cache)
        rows = [first.float()]
        positions = torch.arange(1, ids.shape[1] - 1, device=self.device)
        for i in range(ids.shape[1] - 2):
            # contiguous, as generate() feeds its tokens: the guard-free graph assumes the strides it compiled with
            # (a column sliced out of [B, T] has stride T in dim 0: wrong for B > 1)
            _, logits = self._call_step(ids[:, i + 1:i + 2].contiguous(), positions[i:i + 1], cache)
            rows.append(logits.float())
        cache.reset()
        return torch.stack(rows, 1)


class _EmitClock:
    """A ``generate`` streamer that marks when each new token exists (the first ``put`` is the prompt), on the same
    :class:`StepClock` as the fast loop, so both arms are timed alike."""

    def __init__(self, device):
        self.steps, self.puts = StepClock(device), 0

    def put(self, value):
        if self.puts:
            self.steps.mark()
        self.puts += 1

    def end(self):
        pass


def hf_static_compile_config():
    """HF's own fast path on any device: ``generate(cache_implementation="static", compile_config=...)`` compiles
    the decode forward (transformers >= 4.48; on CPU only when the config says so: ``_compile_all_devices``).
    Full graph, static shapes; mode "default" because "reduce-overhead" means CUDA graphs."""
    from transformers import CompileConfig

    config = CompileConfig(fullgraph=True, dynamic=False, mode="default")
    config._compile_all_devices = True
    return config


@torch.inference_mode()
def hf_generate(model, input_ids: torch.Tensor, max_new_tokens: int, notes: str = "HF generate",
                static_compile: bool = False) -> DecodeResult:
    """HF ``generate`` greedy, exactly ``max_new_tokens``, with per-token emission times from the same call.

    No EOS stop and no min-length processor: ``eos_token_id=None`` leaves HF no EOS criterion or processor, so HF
    runs the same logits path as the other arms (argmax of the last row) for exactly ``max_new_tokens`` steps.
    The first emission (the streamer's put after the prefill) gives TTFT within the very call whose tokens are
    counted. ``static_compile``: HF's own fast path (static cache, compiled decode forward; see
    :func:`hf_static_compile_config`), the reference the fast loop's own contribution is measured against.
    The baseline the fast loop is measured against, and its fallback; timed by the same :class:`StepClock`.
    """
    device = model_device(model)
    ids = input_ids.to(device)
    pad = getattr(model.generation_config, "pad_token_id", None)
    pad = pad if pad is not None else 0
    extra = ({"cache_implementation": "static", "compile_config": hf_static_compile_config()}
             if static_compile else {})
    streamer = _EmitClock(device)
    tokens = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                            eos_token_id=None, do_sample=False, pad_token_id=pad, streamer=streamer, **extra)
    times = streamer.steps.times()
    if len(times) != max_new_tokens:   # a generate that did not stream every step: one emission at the end
        return DecodeResult(tokens, streamer.steps.start, [clock(device)], [tokens.shape[1] - ids.shape[1]], notes)
    return DecodeResult(tokens, streamer.steps.start, times, [1] * max_new_tokens, notes=notes)



class _TeacherForce:
    """A logits processor that makes greedy ``generate`` emit the given tokens: at length L it keeps only
    ``ids[:, L]`` (the raw logits HF returns with ``output_logits`` are taken before any processor runs)."""

    def __init__(self, ids: torch.Tensor):
        self.ids = ids

    def __call__(self, input_ids, scores):
        forced = torch.full_like(scores, float("-inf"))
        return forced.scatter_(1, self.ids[:, input_ids.shape[1]:input_ids.shape[1] + 1], 0.0)


def hf_static_compile_compiles(model) -> tuple[bool, str]:
    """Whether HF ``generate`` runs its decode steps through the compiled forward (``model.get_compiled_call``) with a
    static cache and :func:`hf_static_compile_config` on this model and device, asked with HF's own predicate
    (``_valid_auto_compile_criteria``), and why not when it does not."""
    from transformers import GenerationConfig, StaticCache

    config = GenerationConfig(compile_config=hf_static_compile_config())
    cache = getattr(model, "_cache", None)
    if not isinstance(cache, StaticCache):
        return False, "no HF static cache on the model yet (generate with cache_implementation='static' first)"
    criteria = getattr(model, "_valid_auto_compile_criteria", None)
    if criteria is None:
        return False, "this transformers has no _valid_auto_compile_criteria: HF's auto-compile is not there"
    if not criteria({"past_key_values": cache}, config):
        return False, "HF's _valid_auto_compile_criteria is False here (device, cache or quantiser refuses compile)"
    return True, ""


@torch.inference_mode()
def hf_static_compile_score(model, input_ids: torch.Tensor) -> tuple[torch.Tensor, str]:
    """Next-token logits [B, T - 1, V] of ``input_ids`` [B, T] (teacher forced) through the path
    ``hf_generate(static_compile=True)`` times: the same ``generate`` call with the same static cache and compile
    config, so the prefill of the first token runs eager and every later position through HF's compiled decode
    forward (the very graph the timed calls ran when the batch size and cache length match: HF reuses its cache, of
    the timed length, for any shorter request). A logits processor forces each next token to the given one; the
    logits are HF's raw ones, before the processor. Returns the logits and the path they were scored through (the
    eager forward, with HF's reason, when HF would not compile here)."""
    device = model_device(model)
    ids = input_ids.long().to(device)
    pad = getattr(model.generation_config, "pad_token_id", None)
    timed_cache = getattr(model, "_cache", None)    # HF keeps the last request's static cache on the model
    out = model.generate(ids[:, :1], attention_mask=torch.ones_like(ids[:, :1]), max_new_tokens=ids.shape[1] - 1,
                         eos_token_id=None, do_sample=False, pad_token_id=pad if pad is not None else 0,
                         cache_implementation="static", compile_config=hf_static_compile_config(),
                         logits_processor=[_TeacherForce(ids)], output_logits=True, return_dict_in_generate=True)
    if not torch.equal(out.sequences, ids):
        raise RuntimeError("teacher forcing through HF generate did not follow the given tokens")
    compiled, why = hf_static_compile_compiles(model)
    same = ("the timed requests' static cache and graph shapes" if model._cache is timed_cache else
            "a new static cache: batch or length differ from the timed requests, so a graph of their own")
    path = (f"HF generate, static cache: prefill eager, then HF's compiled decode forward (get_compiled_call) on "
            f"{same}, teacher forced" if compiled else f"HF generate, static cache, eager decode forward ({why})")
    return torch.stack(out.logits, 1).float(), path


__all__ = ["FastDecoder", "DecodeResult", "hf_generate", "hf_static_compile_config", "hf_static_compile_score",
           "hf_static_compile_compiles", "unsupported_reason", "static_cache", "compile_private", "gemv_kernels",
           "gemv_width_limit", "first_compile", "freezable", "PrivateStep"]
