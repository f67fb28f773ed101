"""GPU check of the LLM generation path: writes OUT_DIR/gpu_check.json (keys in the module's ``KEYS``).

The decode arms are the LLM catalogue's (:mod:`workbench.arms.llm`, the same names as ``benchmarks/llm_decode.py``
and the LLM panel), measured by its runner side by side in this one process (interleaved, the same warm-up), each
call one whole request; random weights (speed only, quality not measured):

- ``mbu_bf16_b1``: a ~1B Llama-shape decoder (Llama-3.2-1B: 16 x 2048, GQA 32/8, vocab 128256), arm
  ``fast-loop-bf16`` at batch 1: bytes a decode step reads (weights + the static cache's full KV, bf16) x steps/s
  (1 / TPOT) / the device's measured read bandwidth.
- ``speedup_b1_vs_hf_eager`` / ``speedup_b64_vs_hf_eager``: a 355M GPT-2 shape (24 x 1024), ``fast-loop-bf16`` vs
  ``hf-generate-bf16`` (HF ``generate`` eager, bf16), whole-request time ratio (prefill + decode).
- ``int4_speedup_vs_bf16_b1``: ``fast-loop-int4-wo`` vs ``fast-loop-bf16`` on the ~1B decoder, batch 1.
- ``encoder_fp16_speedup_b64``: a BERT-base-shape encoder, batch 64 x 128, fp32 / fp16 median forward latency.
- ``optimize_cuda_pick`` / ``optimize_cuda_confirmed_speedup``: ``workbench optimize --device cuda`` on the demo
  classifier (the GPU encoder arms of ``arms.gpu``, priced on g6.xlarge, a few minutes' budget, no bundle): the pick
  and its speed-up over eager fp32 on fresh timings; the decision table goes under ``details``. On CPU this section
  lists the GPU catalogue with each arm's skip reason (the search itself needs the GPU).

``--cpu`` runs the same arms at tiny shapes on CPU in well under a minute, so the script is tested where no GPU is;
there the fast loop runs its static-cache loop uncompiled (inductor's C++ build of four graphs would take minutes on
a shared 2-core CPU; the compiled path has its own test), unless ``--compile``.
An arm that cannot run stores null under its key and a line in ``notes`` saying why; the script itself never fails
for one arm. Imports only torch, transformers and workbench modules that need neither plotly nor optimum.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

import torch

KEYS = ("mbu_bf16_b1", "speedup_b1_vs_hf_eager", "speedup_b64_vs_hf_eager", "int4_speedup_vs_bf16_b1",
        "encoder_fp16_speedup_b64", "optimize_cuda_pick", "optimize_cuda_confirmed_speedup", "device")

GPU = {"llama": dict(hidden_size=2048, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
                     intermediate_size=8192, vocab_size=128256, max_position_embeddings=2048),
       "gpt2": dict(n_embd=1024, n_layer=24, n_head=16, vocab_size=50257, n_positions=1024),
       "bert": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
       "prompt": 128, "new": 128, "big_batch": 64, "enc_batch": 64, "enc_len": 128, "repeats": 3,
       "compile": True, "optimize_budget_s": 240}
CPU = {"llama": dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                     intermediate_size=256, vocab_size=512, max_position_embeddings=128),
       "gpt2": dict(n_embd=64, n_layer=2, n_head=4, vocab_size=512, n_positions=128),
       "bert": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128),
       "prompt": 16, "new": 16, "big_batch": 4, "enc_batch": 4, "enc_len": 16, "repeats": 2, "compile": False}


def build(kind: str, shape: dict, device: str, dtype: torch.dtype) -> torch.nn.Module:
    """A random-weight model built directly on ``device`` (a 1B model initialised on the GPU takes seconds)."""
    import transformers

    config_cls, model_cls = {"llama": ("LlamaConfig", "LlamaForCausalLM"), "gpt2": ("GPT2Config", "GPT2LMHeadModel"),
                             "bert": ("BertConfig", "BertModel")}[kind]
    torch.manual_seed(0)
    config = getattr(transformers, config_cls)(**shape)
    with torch.device(device):
        model = getattr(transformers, model_cls)(config)
    return model.to(dtype).eval()


def prompts(batch: int, length: int, vocab: int, device: str) -> torch.Tensor:
    return torch.randint(0, vocab, (batch, length), generator=torch.Generator().manual_seed(1)).to(device)


def decode_rows(model, names, batch: int, cfg: dict, device: str, notes: list, what: str) -> dict:
    """The catalogue arms ``names`` (+ the HF fp32 baseline) on ``model`` at ``batch``: arm name -> row."""
    from workbench.arms.llm import decode_context, llm_arms, measure_llm_arms

    ctx = decode_context(model, cfg["prompt"], cfg["new"], batches=(batch,), compile=cfg["compile"],
                         threads=torch.get_num_threads(), device=device)
    # emulated_bf16: on a CPU without bf16 hardware the tiny-shape run still exercises the bf16 arms (plumbing only)
    arms = llm_arms(names, cfg["compile"], device, emulated_bf16=True)
    rows = {r["arm"]: r for r in measure_llm_arms(arms, ctx, rounds=cfg["repeats"], measure_quality=False)}
    for name, row in rows.items():
        if row["status"] != "measured":
            notes.append(f"{what} {name} not measured: {row['reason']}")
        elif cfg["compile"] and name.startswith("fast-loop") and not row.get("compiled"):
            notes.append(f"{what} {name}: {row.get('notes')}")
    return rows


def ratio(rows: dict, slow: str, fast: str) -> float | None:
    """How many times faster ``fast``'s whole request is than ``slow``'s (p50s of the same run); None if either
    did not run."""
    if rows.get(slow, {}).get("p50_ms") is None or rows.get(fast, {}).get("p50_ms") is None:
        return None
    return round(rows[slow]["p50_ms"] / rows[fast]["p50_ms"], 3)


def llama_arms(cfg: dict, device: str, out: dict, notes: list) -> None:
    """mbu_bf16_b1 and int4_speedup_vs_bf16_b1 on the ~1B decoder (fp32 parent; the arms make their bf16 / int4
    copies)."""
    model = build("llama", cfg["llama"], device, torch.float32)
    rows = decode_rows(model, ["fast-loop-bf16", "fast-loop-int4-wo"], 1, cfg, device, notes, "llama")
    bf16 = rows.get("fast-loop-bf16", {})
    out["mbu_bf16_b1"] = bf16.get("bandwidth_utilisation")
    out["int4_speedup_vs_bf16_b1"] = ratio(rows, "fast-loop-bf16", "fast-loop-int4-wo")
    for name, row in rows.items():
        out["details"][f"llama_{name}_b1"] = {k: row.get(k) for k in (
            "tokens_per_s", "output_tokens_per_s", "ttft_ms_p50", "tpot_ms_p50", "bytes_per_token",
            "peak_read_gb_s", "bandwidth_utilisation", "bandwidth_flag", "compile_seconds", "notes", "reason")}
    out["details"]["llama_params_m"] = round(sum(p.numel() for p in model.parameters()) / 1e6, 1)


def gpt2_arms(cfg: dict, device: str, out: dict, notes: list) -> None:
    """``fast-loop-bf16`` vs ``hf-generate-bf16`` on the 355M GPT-2 shape at batch 1 and the big batch."""
    model = build("gpt2", cfg["gpt2"], device, torch.float32)
    for batch, key in ((1, "speedup_b1_vs_hf_eager"), (cfg["big_batch"], "speedup_b64_vs_hf_eager")):
        rows = decode_rows(model, ["hf-generate-bf16", "fast-loop-bf16"], batch, cfg, device, notes, f"gpt2 b{batch}")
        out[key] = ratio(rows, "hf-generate-bf16", "fast-loop-bf16")
        fast, hf = rows.get("fast-loop-bf16", {}), rows.get("hf-generate-bf16", {})
        out["details"][f"gpt2_b{batch}"] = {"fast_tokens_per_s": fast.get("tokens_per_s"),
                                            "hf_tokens_per_s": hf.get("tokens_per_s"),
                                            "compile_s": fast.get("compile_seconds"), "fast_loop": fast.get("notes")}


def encoder_arm(cfg: dict, device: str, out: dict, notes: list) -> None:
    """BERT-base shape, batch x length, fp32 vs fp16 median forward latency (fp16 on CPU is for the plumbing only)."""
    from workbench.measure.timing import timed_call

    times = {}
    for dtype in (torch.float32, torch.float16):
        model = build("bert", cfg["bert"], device, dtype)
        ids = prompts(cfg["enc_batch"], cfg["enc_len"], model.config.vocab_size, device)
        with torch.inference_mode():
            for _ in range(2):
                model(input_ids=ids)
            calls = sorted(timed_call(lambda: model(input_ids=ids), device)[0] for _ in range(5 * cfg["repeats"]))
        times[str(dtype)] = calls[len(calls) // 2]
    out["encoder_fp16_speedup_b64"] = round(times["torch.float32"] / times["torch.float16"], 3)
    out["details"]["encoder"] = {"fp32_ms": round(times["torch.float32"], 2),
                                 "fp16_ms": round(times["torch.float16"], 2), "batch": cfg["enc_batch"]}
    if device == "cpu":
        notes.append("encoder fp16 on CPU: plumbing check only (no fp16 GEMM speed-up expected)")


def optimize_cuda(cfg: dict, device: str, out: dict, notes: list) -> None:
    """The optimize search on the GPU catalogue; on CPU, that catalogue's arms and why none runs here."""
    from workbench.arms.gpu import gpu_arms

    out["details"]["gpu_arms"] = {a.name: a.reason for a in gpu_arms()}
    if device != "cuda":
        notes.append("optimize_cuda: not run on CPU (the GPU catalogue needs a GPU); details.gpu_arms lists why")
        return
    from workbench.optimize import decision_text, optimize

    result = optimize("text-classification", device="cuda", budget_s=cfg["optimize_budget_s"],
                      study="gpu-check-optimize", redo=True, bundle=False, load_check=False, progress=False)
    d = result.decision
    pick = d.get("pick") or {}
    out["optimize_cuda_pick"] = pick.get("arm")
    out["optimize_cuda_confirmed_speedup"] = pick.get("confirmed_speedup")
    out["details"]["optimize_cuda"] = decision_text(d)


def run(out_dir: Path, cpu: bool, compile: bool = False) -> dict:
    device = "cpu" if cpu else "cuda"
    if not cpu and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device here; use --cpu for the tiny CPU run")
    cfg = dict(CPU, compile=compile) if cpu else GPU
    out = {k: None for k in KEYS}
    out.update(mode="cpu-tiny" if cpu else "gpu", notes=[], details={},
               device=torch.cuda.get_device_name(0) if not cpu else "cpu",
               versions={"torch": torch.__version__, "transformers": __import__("transformers").__version__})
    if cpu:
        from workbench.runtime.cpu import isa_summary, native_bf16

        native, why = native_bf16(isa_summary())
        if not native:
            out["notes"].append(f"bf16 arms ran emulated ({why}): their figures check the plumbing, not bf16 speed")
    t0 = time.perf_counter()
    for arm in (llama_arms, gpt2_arms, encoder_arm, optimize_cuda):
        start = time.perf_counter()
        try:
            arm(cfg, device, out, out["notes"])
        except Exception as err:   # one arm failing leaves its keys null, with the reason, and the rest runs
            out["notes"].append(f"{arm.__name__} failed: {type(err).__name__}: {str(err)[:300]}")
            traceback.print_exc()
        out["details"][f"{arm.__name__}_s"] = round(time.perf_counter() - start, 1)
        if device == "cuda":
            torch.cuda.empty_cache()
    out["elapsed_s"] = round(time.perf_counter() - t0, 1)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "gpu_check.json").write_text(json.dumps(out, indent=2))
    return out


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="folder for gpu_check.json")
    parser.add_argument("--cpu", action="store_true", help="tiny shapes on CPU (the script's own test)")
    parser.add_argument("--compile", action="store_true", help="with --cpu: compile the fast loop too (minutes)")
    args = parser.parse_args(argv)
    out = run(args.out_dir, args.cpu, args.compile)
    print(f"wrote {args.out_dir / 'gpu_check.json'}")
    print(json.dumps({k: out[k] for k in KEYS + ("notes",)}))   # last line: one JSON object
    return 0


if __name__ == "__main__":
    sys.exit(main())
