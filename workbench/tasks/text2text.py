"""Sequence-to-sequence tasks (summarisation / translation style): a local T5 / BART directory and source-target pairs.

Quality is ROUGE-L (or chrF) of greedy generations against the targets, with a bootstrap CI over examples.
Timing inputs are one encoder pass plus the first decoder step (``decoder_input_ids`` = the start token), the call
every generated sequence begins with; :func:`workbench.measure.generation.measure_text2text_generation` times whole
generations per output token.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import torch

from workbench.core import Variant
from workbench.runtime.torch_runner import TorchRunner
from workbench.tasks.base import QualityResult, Task
from workbench.tasks.hf_loading import load_hf_model, load_tokenizer


def with_decoder_start(inputs: dict, start_id: int) -> dict:
    """``inputs`` plus ``decoder_input_ids`` = [B, 1] start tokens when absent: a seq2seq forward needs a decoder
    input, and callers that only know ``input_ids`` (sweeps, prefill timing) mean the first generation step."""
    if "decoder_input_ids" in inputs:
        return inputs
    ids = torch.as_tensor(inputs["input_ids"])
    return {**inputs, "decoder_input_ids": torch.full((ids.shape[0], 1), start_id, dtype=torch.long)}


class Seq2SeqTorchRunner(TorchRunner):
    """A TorchRunner for encoder-decoders: fills in the decoder start token when the inputs lack one."""

    def __init__(self, module, device="cpu", input_names=None, threads=None, start_id: int = 0):
        super().__init__(module, device, input_names, threads)
        self.start_id = start_id

    def with_threads(self, threads: int) -> "Seq2SeqTorchRunner":
        return Seq2SeqTorchRunner(self.module, self.device, self.input_names, threads, self.start_id)

    def __call__(self, inputs: dict) -> torch.Tensor:
        return super().__call__(with_decoder_start(inputs, self.start_id))


def generate_ids(variant: Variant, batch: dict[str, torch.Tensor], max_new_tokens: int,
                 min_new_tokens: int = 0) -> torch.Tensor:
    """Greedy output ids [B, T] of a seq2seq variant: its runner's ``generate_seq2seq`` (ONNX Runtime), or HF
    ``generate`` on the torch module, at the runner's thread count."""
    runner_generate = getattr(variant.runner, "generate_seq2seq", None)
    if runner_generate is not None:
        return runner_generate(batch, max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens)
    from workbench.runtime import require_torch_module
    from workbench.runtime.threads import torch_threads

    model = require_torch_module(variant, "text2text generation", "use task.baseline() or export_seq2seq(...)")
    feed = {k: batch[k].to(variant.device) for k in ("input_ids", "attention_mask")}
    with torch_threads(getattr(variant.runner, "threads", None)), torch.inference_mode():
        out = model.generate(**feed, do_sample=False, num_beams=1, max_new_tokens=max_new_tokens,
                             min_new_tokens=min_new_tokens)
    return out.cpu()


class Text2TextTask(Task):
    """A local HF encoder-decoder (``AutoModelForSeq2SeqLM``: T5, BART, ...) with (source, target) pairs.

    Args:
        model_dir: local directory with config.json, safetensors weights and a tokenizer.
        pairs: ``{"test": [(source, target), ...], "validation": [...]}``; "test" is required.
        metric: "rouge_l" (summarisation) or "chrf" (translation); the other is reported alongside.
        max_source_len: source tokens kept (longer sources are truncated).
        max_new_tokens: longest generation when evaluating.
        prefix: prepended to every source (T5 style: "summarize: ").

    Example:
        >>> task = get_task("text2text", "~/my-t5", data="pairs.jsonl")     # doctest: +SKIP
        >>> task.evaluate(task.baseline()).value                           # ROUGE-L F1 x 100
    """

    kind = "text2text"
    generates_text = True
    input_names = ("input_ids", "attention_mask", "decoder_input_ids")

    def __init__(self, model_dir: str | Path, pairs: dict[str, list[tuple[str, str]]], name: str | None = None,
                 metric: str = "rouge_l", max_source_len: int = 256, max_new_tokens: int = 64, prefix: str = "",
                 trust_remote_code: bool = False, allow_pickle: bool = False):
        from workbench.tasks.text_metrics import text_metric

        if not pairs.get("test"):
            raise ValueError("text2text task needs a non-empty 'test' list of (source, target) pairs")
        text_metric(metric)  # an unknown metric fails here, not after a long evaluation
        self.model_dir, self.pairs, self.metric = Path(model_dir), pairs, metric
        self.name = name or self.model_dir.name
        self.max_source_len, self.max_new_tokens, self.prefix = max_source_len, max_new_tokens, prefix
        self.trust_remote_code, self.allow_pickle = trust_remote_code, allow_pickle
        self.tokenizer = load_tokenizer(model_dir, trust_remote_code)
        from transformers import AutoConfig

        cfg = AutoConfig.from_pretrained(self.model_dir, trust_remote_code=self.trust_remote_code)
        self.decoder_start_token_id = self._start_token(cfg)
        self._ensure_pad(cfg)

    def _ensure_pad(self, cfg) -> None:
        """Give a tokenizer saved without a pad token the id the model pads with (``families.pad_id``: the config's
        ``pad_token_id``, else EOS), so batched sources can be padded; the attention mask hides it either way."""
        if self.tokenizer.pad_token is not None:
            return
        from workbench.runtime.families import pad_id

        pad = pad_id(self.tokenizer, cfg)
        token = self.tokenizer.convert_ids_to_tokens(pad)
        if token is None:
            raise ValueError(f"{self.model_dir}: the pad id {pad} (config.json pad_token_id, else EOS) is not in the "
                             "tokenizer's vocabulary: set tokenizer.pad_token and save it beside the model")
        self.tokenizer.pad_token = token

    def _start_token(self, cfg) -> int:
        from transformers import GenerationConfig

        if not getattr(cfg, "is_encoder_decoder", False):
            raise ValueError(f"{self.model_dir} is a {cfg.model_type!r} model, not an encoder-decoder: use the "
                             "causal-lm task for decoder-only models")
        start = cfg.decoder_start_token_id
        if start is None and (self.model_dir / "generation_config.json").is_file():
            start = GenerationConfig.from_pretrained(self.model_dir).decoder_start_token_id
        if start is None:
            raise ValueError(f"{self.model_dir}/config.json has no decoder_start_token_id: set it (T5: the pad id, "
                             "BART: the EOS id) and save the config")
        return int(start)

    def load_model(self, dtype: torch.dtype = torch.float32, device: str = "cpu") -> torch.nn.Module:
        return load_hf_model(self.model_dir, "AutoModelForSeq2SeqLM", self.trust_remote_code, dtype=dtype,
                             device=device, allow_pickle=self.allow_pickle)

    def encode(self, sources: list[str], seq_len: int | None = None) -> dict[str, torch.Tensor]:
        """Sources tokenised: padded to the longest, or to exactly ``seq_len`` tokens when given."""
        padding = "max_length" if seq_len else True
        enc = self.tokenizer([self.prefix + s for s in sources], truncation=True, padding=padding,
                             max_length=seq_len or self.max_source_len, return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    def generate(self, variant: Variant, sources: list[str], max_new_tokens: int | None = None) -> list[str]:
        """Greedy generations of ``variant`` for ``sources``, decoded to text."""
        ids = generate_ids(variant, self.encode(sources), max_new_tokens or self.max_new_tokens)
        return self.tokenizer.batch_decode(ids, skip_special_tokens=True)

    def evaluate(self, variant: Variant, split: str = "test", limit: int | None = None,
                 batch_size: int = 8) -> QualityResult:
        from workbench.util.stats import bootstrap_ci
        from workbench.tasks.text_metrics import TEXT_METRICS

        pairs = self.pairs[split][:limit]
        outputs: list[str] = []
        for i in range(0, len(pairs), batch_size):
            outputs += self.generate(variant, [s for s, _ in pairs[i:i + batch_size]])
        scores = {name: [fn(o, t) for o, (_, t) in zip(outputs, pairs)] for name, fn in TEXT_METRICS.items()}
        main = scores[self.metric]
        low, high = bootstrap_ci(main)
        extra = {name: round(sum(v) / len(v), 3) for name, v in scores.items() if name != self.metric}
        return QualityResult(self.metric, sum(main) / len(main), low, high, len(pairs), True, extra,
                             per_example=tuple(main))

    def _sources(self, split: str) -> list[str]:
        return [s for s, _ in self.pairs.get(split) or self.pairs["test"]]

    def _with_start(self, enc: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return with_decoder_start(enc, self.decoder_start_token_id)

    def torch_runner(self, model: torch.nn.Module, device: str) -> Seq2SeqTorchRunner:
        return Seq2SeqTorchRunner(model, device, self.input_names, start_id=self.decoder_start_token_id)

    def example_inputs(self, batch_size: int = 1, seq_len: int | None = None) -> dict[str, torch.Tensor]:
        """Real sources padded/truncated to ``seq_len`` tokens, plus the decoder start token: encoder + first step."""
        sources = self._sources("test")
        picked = [sources[i % len(sources)] for i in range(batch_size)]
        return self._with_start(self.encode(picked, seq_len or self.max_source_len))

    def generation_call(self, variant: Variant, inputs: dict[str, torch.Tensor], output_len: int):
        """Greedy generation of exactly ``output_len`` target tokens (EOS suppressed by ``min_new_tokens``)."""
        feed = {k: inputs[k] for k in ("input_ids", "attention_mask")}
        return lambda: generate_ids(variant, feed, max_new_tokens=output_len, min_new_tokens=output_len)

    def tokens_in(self, inputs: dict[str, torch.Tensor]) -> int:
        """Real source tokens (padding is not text a client sends)."""
        return int(inputs["attention_mask"].sum())

    def calibration_batches(self, n_examples: int = 128, batch_size: int = 8, seq_len: int | None = None) -> Iterator[dict]:
        sources = self._sources("validation")[:n_examples]
        for i in range(0, len(sources), batch_size):
            yield self._with_start(self.encode(sources[i:i + batch_size], seq_len or self.max_source_len))
