"""Greedy speculative decoding on the fast loop: static KV caches, a compiled draft round and ONE compiled verify call.

The eager engine (:mod:`workbench.decoding.speculative`) pays the framework's per-call overhead on every draft token
and every verify call; on a CPU with a small target that overhead, not the weights, is most of a step, so the draft's
low FLOP count buys little. This engine removes the overhead the way the fast loop (:mod:`workbench.decoding.fast_loop`)
does for plain decoding, following gpt-fast's speculative design (static caches indexed by position, the target checks
the newest token plus the drafts in one call at fixed shape):

- target and draft each get a transformers ``StaticCache`` (:func:`~workbench.decoding.fast_loop.static_cache`).
  Positions are explicit (``cache_position``), so a rejected draft needs no crop: its slots sit beyond the accepted
  length, the causal mask hides them, and the next round overwrites them.
- a **draft round** is one compiled call: it feeds the draft the two newest tokens (so the draft catches up after a
  fully accepted round without a branch or a second graph: re-writing the older slot with the same token is harmless)
  and unrolls gamma greedy draft steps inside the graph, returning gamma tokens.
- a **verify** is one compiled call on gamma + 1 tokens (the newest token + the drafts) at fixed shape: target argmax
  at every position, and the number of drafts kept (the leading run where draft == target argmax), all in the graph;
  only that count reaches the host.
- both are compiled through :func:`~workbench.decoding.fast_loop.compile_private` (a private code object per decoder,
  guard-free and weights frozen on CPU, CUDA graphs on CUDA), and warmed up before any clock starts
  (``compile_seconds``).

Every round proposes exactly gamma tokens and verifies gamma + 1 (one graph each); the last round may overshoot
``max_new_tokens`` and the surplus is dropped, so the caches hold ``prompt + max_new_tokens + gamma`` positions and that
must fit the models' context. Output is the target's greedy output (the first new token comes from the target's own
prefill, every later one is the target's argmax at its position); batch 1.

Stats are a :class:`~workbench.decoding.speculative.SpecStats`, as the eager engine's: ``draft_calls`` counts draft
forward passes (gamma per round, run inside one compiled call), ``target_calls`` verify calls, ``draft_seconds`` /
``target_seconds`` the time in the draft rounds / verify calls, so c and the verify cost come out of the same run.

Example:
    >>> spec = FastSpeculativeDecoder(target, draft, gamma=4, max_cache_len=256)        # doctest: +SKIP
    >>> tokens, stats = spec.generate(ids, max_new_tokens=64); stats.alpha, spec.compile_seconds
"""
from __future__ import annotations

import torch

from workbench.decoding.fast_loop import (compile_private, freezable, static_cache,
                                          unsupported_reason)
from workbench.decoding.lm import check_prompt, clock, last_logits_only, model_device, vocab_size
from workbench.decoding.speculative import SpecStats


class FastSpeculativeDecoder:
    """Greedy speculative decoding of ``target`` with ``draft`` on static caches and compiled calls (module doc).

    Args:
        target / draft: HF causal LMs with the same vocabulary, in eval mode, on the same device (never moved).
        gamma: tokens the draft proposes per round (>= 1); the verify call checks gamma + 1.
        max_cache_len: prompt + new tokens must fit; the caches get gamma more positions for the last round's
            overshoot, and ``max_cache_len + gamma`` must be within both models' context.
        compile: compile the draft round and the verify call (False: the same static-cache loop, eager).
        freeze: on CPU, freeze weights into the compiled graphs (None = on when compiling on CPU).
        cpp_wrapper: on CPU, compile both graphs with inductor's C++ wrapper (see
            :func:`~workbench.decoding.fast_loop.compile_private`).
        gemm_template: on CPU, with frozen weights, autotune every matmul of both graphs between aten and inductor's
            C++ GEMM template (see :func:`~workbench.decoding.fast_loop.compile_private`). The options are
            :class:`~workbench.decoding.fast_loop.FastDecoder`'s, so one ``fast_loop_options`` dict configures both.
    """

    def __init__(self, target, draft, *, gamma: int = 4, max_cache_len: int, compile: bool = True,
                 freeze: bool | None = None, cpp_wrapper: bool = False, gemm_template: bool = False):
        from workbench.tasks.hf_loading import context_length

        if not isinstance(gamma, int) or gamma < 1:
            raise ValueError(f"gamma={gamma!r}: the draft must propose at least 1 token per round (use gamma >= 1)")
        if max_cache_len < 2:
            raise ValueError(f"max_cache_len={max_cache_len}: need >= 2 (prompt + new tokens)")
        self.target, self.draft, self.gamma = target.eval(), draft.eval(), gamma
        self.device = model_device(target)
        self.reason = unsupported_reason(target) or unsupported_reason(draft)
        if not self.reason and vocab_size(draft) != vocab_size(target):
            raise ValueError(f"draft vocabulary ({vocab_size(draft)} tokens) differs from the target's "
                             f"({vocab_size(target)}): use a draft trained with the same tokenizer")
        if not self.reason and model_device(draft) != self.device:
            raise ValueError(f"draft is on {model_device(draft)}, target on {self.device}: move the draft with "
                             f"draft.to('{self.device}')")
        self.cache_len = max_cache_len + gamma   # the last round may write gamma slots past prompt + new tokens
        for name, model in (("target", target), ("draft", draft)):
            ctx = context_length(model) if hasattr(model, "config") else None
            if ctx is not None and self.cache_len > ctx:
                raise ValueError(f"max_cache_len={max_cache_len} + gamma={gamma} exceeds the {name}'s context of {ctx} "
                                 f"tokens (every round verifies gamma + 1 tokens at fixed shape): lower max_cache_len "
                                 f"to {ctx - gamma}")
        self.max_cache_len = max_cache_len
        self.supported = not self.reason
        self.compiled = bool(compile and self.supported)
        on_cpu = self.compiled and self.device.type == "cpu"
        self.frozen = bool(on_cpu and freeze is not False and freezable(target) and freezable(draft))
        self.cpp_wrapper = bool(cpp_wrapper and on_cpu)
        self.gemm_template = bool(gemm_template and self.frozen)   # the template packs frozen (constant) weights
        self.compile_seconds = 0.0
        self._caches = None                     # (target cache, draft cache), built and warmed on first use
        self._positions = torch.arange(self.cache_len, device=self.device)
        self._draft_round_fn, self._verify_fn = self._draft_round, self._verify

    @property
    def label(self) -> str:
        """What actually runs, for a row's variant name."""
        if not self.supported:
            return "eager speculative engine (fast loop unsupported)"
        if not self.compiled:
            return f"speculative fast loop (static caches, eager, gamma={self.gamma})"
        frozen = ", frozen weights" if self.frozen else ""
        template = ", autotuned C++ GEMM template" if self.gemm_template else ""
        wrapper = ", C++ wrapper" if self.cpp_wrapper else ""
        return (f"speculative fast loop (static caches, compiled draft round + verify{frozen}{template}{wrapper}, "
                f"gamma={self.gamma})")

    # --- the two functions that are compiled (plain functions of tensors and the caches) ---

    def _draft_round(self, newest: torch.Tensor, positions: torch.Tensor, cache) -> torch.Tensor:
        """newest [1, 2] (the two newest tokens) at positions [2] -> gamma greedy draft tokens [gamma]."""
        logits = self.draft(input_ids=newest, cache_position=positions, past_key_values=cache, use_cache=True).logits
        token = logits[:, -1].argmax(-1)
        drafts = [token]
        for i in range(1, self.gamma):   # unrolled when traced: gamma draft steps in one graph
            logits = self.draft(input_ids=token[:, None], cache_position=positions[1:] + i, past_key_values=cache,
                                use_cache=True).logits
            token = logits[:, -1].argmax(-1)
            drafts.append(token)
        return torch.cat(drafts)

    def _verify(self, newest: torch.Tensor, drafts: torch.Tensor, positions: torch.Tensor, cache):
        """newest [1] + drafts [gamma] at positions [gamma + 1] -> (target argmax [gamma + 1], drafts kept [])."""
        tokens = torch.cat([newest, drafts])[None]
        best = self.target(input_ids=tokens, cache_position=positions, past_key_values=cache,
                           use_cache=True).logits[0].argmax(-1)
        kept = (drafts != best[:-1]).long().cumsum(0).eq(0).sum()   # leading run of agreement
        return best, kept

    # --- running them ---

    def _call(self, fn, *args):
        out = fn(*args)
        if self.compiled and self.device.type == "cuda":   # CUDA graphs reuse output buffers on the next replay
            torch.compiler.cudagraph_mark_step_begin()
            out = tuple(t.clone() for t in out) if isinstance(out, tuple) else out.clone()
        return out

    def _prefill(self, model, ids: torch.Tensor, cache) -> torch.Tensor:
        """Eager pass of ``ids`` [T] into ``cache`` at positions 0..T-1; the greedy next token [1]."""
        logits = model(input_ids=ids[None], cache_position=self._positions[:len(ids)], past_key_values=cache,
                       use_cache=True, **last_logits_only(model)).logits
        return logits[:, -1].argmax(-1)

    @torch.inference_mode()   # as generate() runs: a graph traced outside it would not be the one generate uses
    def _ready_caches(self):
        """Both static caches, built and (when compiling) the two graphs compiled and warmed up, outside any timing."""
        if self._caches is not None:
            return self._caches
        self._caches = static_cache(self.target, self.cache_len), static_cache(self.draft, self.cache_len)
        t0 = clock(self.device)
        try:
            if self.compiled:
                self._draft_round_fn, self._verify_fn = (
                    compile_private(fn, self, f"{name}_g{self.gamma}", self.device, self.frozen,
                                    cpp_wrapper=self.cpp_wrapper, gemm_template=self.gemm_template)
                    for fn, name in ((FastSpeculativeDecoder._draft_round, "draft_round"),
                                     (FastSpeculativeDecoder._verify, "verify")))
            dummy = torch.zeros(self.cache_len, dtype=torch.long, device=self.device)
            for model, cache in zip((self.target, self.draft), self._caches):
                self._prefill(model, dummy[:2], cache)   # eager first: the caches allocate on their first update
            for _ in range(3):   # the first round compiles both graphs; CUDA graph trees record on the 2nd-3rd call
                self._round(dummy, 2)
        except Exception as err:   # a backend/compiler missing here: run eager, and say so
            if not self.compiled:
                raise
            self.compiled = self.frozen = self.cpp_wrapper = self.gemm_template = False
            self._draft_round_fn, self._verify_fn = self._draft_round, self._verify
            self.reason = f"torch.compile failed ({type(err).__name__}: {str(err)[:200]}); running eager"
        self.compile_seconds += clock(self.device) - t0
        for cache in self._caches:
            cache.reset()
        return self._caches

    def _round(self, seq: torch.Tensor, n: int):
        """One round after ``seq[:n]`` (caches hold ``seq[:n - 1]``): (drafts, target argmax, kept, t_draft_done)."""
        target_cache, draft_cache = self._caches
        drafts = self._call(self._draft_round_fn, seq[n - 2:n][None], self._positions[n - 2:n], draft_cache)
        t_draft = clock(self.device)
        best, kept = self._call(self._verify_fn, seq[n - 1:n], drafts, self._positions[n - 1:n + self.gamma],
                                target_cache)
        return drafts, best, int(kept), t_draft

    @torch.inference_mode()
    def generate(self, input_ids, max_new_tokens: int, eos_token_id: int | None = None) -> tuple[torch.Tensor, SpecStats]:
        """Greedy ``max_new_tokens`` after the prompt ``input_ids`` [1, T]: (prompt + new tokens [1, T + new], stats).

        ``eos_token_id``: stop after that token (None: exactly ``max_new_tokens``, as the fast loop). A model the fast
        loop cannot run goes through the eager engine (:func:`~workbench.decoding.speculative.speculative_generate`).
        """
        prompt = check_prompt(self.target, input_ids, max_new_tokens)
        if not self.supported:
            from workbench.decoding.drafters import ModelDrafter
            from workbench.decoding.speculative import speculative_generate

            return speculative_generate(self.target, ModelDrafter(self.draft, self.target, lean=False), prompt,
                                        self.gamma, 0.0, max_new_tokens, eos_token_id)
        if len(prompt) + max_new_tokens > self.max_cache_len:
            raise ValueError(f"prompt {len(prompt)} + max_new_tokens {max_new_tokens} exceeds max_cache_len="
                             f"{self.max_cache_len}: build the decoder with a larger max_cache_len")
        target_cache, draft_cache = self._ready_caches()
        p, limit, gamma = len(prompt), len(prompt) + max_new_tokens, self.gamma
        seq = torch.empty(limit + gamma + 1, dtype=torch.long, device=self.device)   # room for the overshoot
        seq[:p] = prompt.to(self.device)
        stats = SpecStats(gamma)
        start = clock(self.device)
        seq[p] = self._prefill(self.target, seq[:p], target_cache)[0]   # the first new token: TTFT as the fast loop
        t_target = clock(self.device)
        if p > 1:
            self._prefill(self.draft, seq[:p - 1], draft_cache)         # the round feeds seq[p - 1] and seq[p]
        decode_start = clock(self.device)
        stats.target_prefill_seconds, stats.draft_prefill_seconds = t_target - start, decode_start - t_target
        emit_times, emit_counts, n = [t_target], [1], p + 1
        stopped = eos_token_id is not None and int(seq[p]) == eos_token_id
        while n < limit and not stopped:
            t0 = clock(self.device)
            drafts, best, kept, t1 = self._round(seq, n)
            t2 = clock(self.device)
            seq[n:n + kept] = drafts[:kept]
            seq[n + kept] = best[kept]
            stats.proposed, stats.accepted = stats.proposed + gamma, stats.accepted + kept
            stats.rejections += kept < gamma
            stats.accept_lengths.append(kept)
            stats.proposal_lengths.append(gamma)
            stats.draft_seconds, stats.target_seconds = stats.draft_seconds + t1 - t0, stats.target_seconds + t2 - t1
            stats.target_calls, stats.draft_calls = stats.target_calls + 1, stats.draft_calls + gamma
            n_old, n = n, min(n + kept + 1, limit)   # the last round's surplus past max_new_tokens is dropped
            if eos_token_id is not None and (seq[n_old:n] == eos_token_id).any():
                n, stopped = n_old + int((seq[n_old:n] == eos_token_id).nonzero()[0]) + 1, True
            emit_times.append(t2)
            emit_counts.append(n - n_old)
        end = clock(self.device)
        for cache in (target_cache, draft_cache):
            cache.reset()   # zeroes in place: the next call starts empty at the same addresses (CUDA graphs)
        stats.decode_seconds, stats.seconds, stats.new_tokens = end - decode_start, end - start, n - p
        stats.requests = [(start, emit_times, emit_counts)]
        return seq[:n][None].clone(), stats


__all__ = ["FastSpeculativeDecoder"]
