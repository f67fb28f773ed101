"""Served quality: what the engine computes on the exported checkpoint, against the workbench's own computation of the
same checkpoint (the weights in ``checkpoint/``, loaded by transformers, not the variant they were written from).

- **Prompt perplexity** (:func:`served_perplexity`): vLLM's prompt log-probabilities (``prompt_logprobs``) over the
  same token blocks as the workbench's own NLL (:func:`workbench.tasks.causal_lm.block_nll`, fp32 compute from the
  checkpoint's bf16 weights, or from its int8 / int4 weights dequantised); the difference in percent.
- **Greedy agreement** (:func:`greedy_agreement`): the engine's greedy tokens (temperature 0, ``ignore_eos``, token
  ids returned by the server) against the workbench's own greedy decode
  (:func:`workbench.decoding.fast_loop.hf_generate`, no EOS stop) from the same prompt ids. After the first
  divergence the two continue from different contexts, so agreement is counted up to it: the token agreement rate
  is the share of all generated tokens that come before their prompt's first divergence; each prompt's first
  divergence position (None: none within the tokens asked for) is kept. The engine computes in its dtype (bf16, or
  fp32 where the CPU has no native bf16) with its own kernels (and W8A8 activations for int8), the workbench in fp32:
  near-ties in the logits may flip, so a rate below 1 is expected and reported, not hidden; at each first divergence
  the gap between the two picks in the workbench's own log-probabilities says whether it was a near-tie
  (``greedy_divergence_logprob_gaps``, nats).
"""
from __future__ import annotations

import json
import math
import urllib.request
from pathlib import Path


def _complete(url: str, body: dict, timeout_s: float = 300.0) -> dict:
    req = urllib.request.Request(f"{url}/v1/completions", json.dumps({"model": "model", **body}).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout_s) as r:
        return json.loads(r.read())["choices"][0]


def own_model(checkpoint: Path):
    """The exported checkpoint loaded by transformers in fp32 (safetensors only); an int8 / int4 one with its
    weights dequantised exactly (q x scale in fp32): the same weights the engine's kernels read."""
    import torch

    from workbench.serving.engine.inprocess import dequantised_model

    return dequantised_model(checkpoint, torch.float32)[0]


def served_perplexity(url: str, model, blocks) -> dict:
    """Perplexity of ``blocks`` ([N, T] token ids) from the engine's prompt log-probabilities and from ``model``."""
    import torch

    from workbench.tasks.causal_lm import block_nll

    with torch.inference_mode():
        own = torch.cat([block_nll(model(input_ids=c).logits, c)[0] for c in blocks.split(8)])
    tokens = blocks.shape[0] * (blocks.shape[1] - 1)
    own_ppl = math.exp(float(own.sum()) / tokens)
    nll = 0.0
    for ids in blocks.tolist():
        lps = _complete(url, {"prompt": ids, "max_tokens": 1, "temperature": 0, "prompt_logprobs": 1})["prompt_logprobs"]
        nll -= sum(lp[str(t)]["logprob"] for t, lp in zip(ids[1:], lps[1:]))
    served = math.exp(nll / tokens)
    return {"own_ppl": round(own_ppl, 4), "served_ppl": round(served, 4),
            "served_ppl_diff_pct": round(100 * (served - own_ppl) / own_ppl, 3), "blocks": int(blocks.shape[0]),
            "block_len": int(blocks.shape[1])}


def served_greedy(url: str, prompt_ids: list[int], new_tokens: int) -> list[int]:
    """The engine's greedy continuation of ``prompt_ids``: exactly ``new_tokens`` token ids (no EOS stop)."""
    choice = _complete(url, {"prompt": prompt_ids, "max_tokens": new_tokens, "temperature": 0, "ignore_eos": True,
                             "return_token_ids": True})
    ids = choice.get("token_ids")
    if ids is None:
        raise RuntimeError("the engine returned no token_ids (its OpenAI server predates `return_token_ids`): "
                           "use vLLM >= 0.10 to compare greedy outputs by token")
    return list(ids)


def agreement(served: list[list[int]], own: list[list[int]]) -> dict:
    """Token agreement up to each sequence's first divergence (see the module doc)."""
    if len(served) != len(own) or not served:
        raise ValueError(f"{len(served)} served vs {len(own)} own sequences: compare the same prompts, at least one")
    firsts, agreed, total = [], 0, 0
    for s, o in zip(served, own):
        n = min(len(s), len(o))
        first = next((i for i in range(n) if s[i] != o[i]), None)
        firsts.append(first)
        agreed += n if first is None else first
        total += max(len(s), len(o))
    diverged = [f for f in firsts if f is not None]
    return {"greedy_token_agreement": round(agreed / total, 4), "greedy_exact_sequences": firsts.count(None),
            "greedy_sequences": len(firsts), "greedy_first_divergence": firsts,
            "greedy_first_divergence_min": min(diverged) if diverged else None}


def greedy_agreement(url: str, model, prompts: list[list[int]], new_tokens: int) -> dict:
    """The engine's and the workbench's greedy tokens from the same prompts (see the module doc)."""
    import torch

    from workbench.decoding.fast_loop import hf_generate

    served = [served_greedy(url, p, new_tokens) for p in prompts]
    own = []
    with torch.inference_mode():
        for p in prompts:
            ids = torch.tensor([p])
            own.append(hf_generate(model, ids, new_tokens).tokens[0, len(p):].tolist())
    out = agreement(served, own)
    # At each first divergence, how far apart the two picks are in the workbench's own log-probabilities (same
    # context: the tokens both agreed on): a gap of a few hundredths of a nat is a near-tie that bf16 rounding flips,
    # a large one would be a real difference in what the engine computes.
    gaps = []
    with torch.inference_mode():
        for p, s, o, first in zip(prompts, served, own, out["greedy_first_divergence"]):
            if first is None:
                continue
            logp = torch.log_softmax(model(input_ids=torch.tensor([p + o[:first]])).logits[0, -1].float(), -1)
            gaps.append(round(float(logp[o[first]] - logp[s[first]]), 4))
    return {**out, "greedy_divergence_logprob_gaps": gaps, "greedy_new_tokens": new_tokens}


def served_quality(url: str, checkpoint: Path, blocks, n_prompts: int = 8, prompt_len: int = 32,
                   new_tokens: int = 32) -> dict:
    """Both checks on one running engine: perplexity over ``blocks`` and greedy agreement from the first
    ``prompt_len`` tokens of the first ``n_prompts`` blocks."""
    if blocks.shape[1] <= prompt_len:
        raise ValueError(f"blocks of {blocks.shape[1]} tokens: the greedy prompts need more than {prompt_len}")
    model = own_model(Path(checkpoint))
    out = served_perplexity(url, model, blocks)
    prompts = [row[:prompt_len] for row in blocks[:n_prompts].tolist()]
    out.update(greedy_agreement(url, model, prompts, new_tokens))
    return out


def served_quality_of_baseline(task, folder: Path, n_blocks: int = 32, n_prompts: int = 16,
                               new_tokens: int = 32) -> dict:
    """:func:`served_quality` of ``task``'s baseline: exported for the engine (bf16) into ``folder``, served on
    loopback (pinned apart from this process's client cores) for as long as the two checks take, then stopped."""
    from workbench.serving.engine.engine_args import EngineArgs
    from workbench.serving.engine.export import export_engine
    from workbench.serving.engine.server import VllmServer, split_cpus

    folder = Path(folder)
    ckpt = export_engine(task.baseline(), task, to=folder / "bundle-bf16", overwrite=True) / "checkpoint"
    blocks = task.token_blocks("test")[:n_blocks]
    with VllmServer(ckpt, EngineArgs(max_model_len=max(256, blocks.shape[1] + 8)), folder / "vllm.log",
                    cpus=split_cpus()[0]) as server:
        return served_quality(server.url, ckpt, blocks, n_prompts=n_prompts, new_tokens=new_tokens)


__all__ = ["served_perplexity", "served_greedy", "greedy_agreement", "agreement", "served_quality", "own_model",
           "served_quality_of_baseline"]
