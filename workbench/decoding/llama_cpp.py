"""llama.cpp as a decoder: an HF causal LM written as a GGUF file by llama.cpp's own converter, then greedy requests
and teacher-forced scoring through ``llama-cpp-python`` (the strongest CPU peer of the fast loop).

Optional: ``llama-cpp-python`` is not a dependency (PyPI has only its source; ``make llama-cpp`` builds it with cmake
and puts the converter where it is looked for). The converter is not in its wheel: ``convert_hf_to_gguf.py`` with its
``conversion/`` and ``gguf-py/`` folders come from the vendored llama.cpp of the same source (``vendor/llama.cpp``),
found at ``$WORKBENCH_LLAMA_CPP_CONVERTER`` or in ``<venv>/share/llama.cpp/`` (:func:`converter_path`).
:func:`unavailable` says which of the two is missing.

The converter names a BPE tokenizer's pre-tokenizer from the hash of its output on a test text, and refuses a
tokenizer it does not know (a custom BPE such as the demo LM's 4096-id byte-level one). :func:`export_gguf` names it
(``pre_tokenizer``, "gpt-2" for GPT-2's byte-level regex) only when the converter does not recognise it. The decode
loop feeds token ids, never text, so the name does not change what is timed; it keeps the file's tokenizer right.

One request (:meth:`LlamaCppDecoder.generate`): the KV cache emptied (no prefix reuse from the last request), the
prompt evaluated in one call (its logits give the first token: TTFT), then one ``eval`` of one token per step, greedy
(argmax of llama.cpp's logits, no sampler, no EOS stop), an emission time per token from the same call.
:meth:`LlamaCppDecoder.score` teacher-forces the same steps and returns llama.cpp's own logits.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch

from workbench.decoding.fast_loop import DecodeResult, StepClock

INSTALL = "llama-cpp-python not installed: make llama-cpp (builds it with cmake and copies its converter)"
OUTTYPES = ("f32", "bf16")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt",
                    "tokenizer.model")


def converter_path() -> Path | None:
    """llama.cpp's ``convert_hf_to_gguf.py``: ``$WORKBENCH_LLAMA_CPP_CONVERTER``, else ``<venv>/share/llama.cpp/``."""
    env = os.environ.get("WORKBENCH_LLAMA_CPP_CONVERTER")
    path = Path(env) if env else Path(sys.prefix) / "share" / "llama.cpp" / "convert_hf_to_gguf.py"
    return path if path.is_file() else None


def unavailable() -> str | None:
    """Why the llama.cpp arms cannot run here (the library or the converter missing), else None."""
    if importlib.util.find_spec("llama_cpp") is None:
        return INSTALL
    if converter_path() is None:
        return ("llama.cpp's HF->GGUF converter not found: make llama-cpp copies convert_hf_to_gguf.py, conversion/ "
                "and gguf-py/ from the llama-cpp-python source's vendor/llama.cpp into <venv>/share/llama.cpp/ (or set "
                "WORKBENCH_LLAMA_CPP_CONVERTER to the script)")
    return None


# The converter, run in its own interpreter (it puts its gguf-py first on sys.path and sets up logging), with two
# changes: when it does not recognise the tokenizer's pre-tokenizer, the given name is written instead of refusing
# the file; and a model without tokenizer.model goes straight to its BPE path (the Llama converter imports
# sentencepiece before it looks for the file, which would make sentencepiece a dependency for no use).
_DRIVER = """
import sys
converter, pre, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
sys.path.insert(0, converter.rsplit("/", 1)[0])
from conversion import base
known, sentencepiece = base.TextModel.get_vocab_base_pre, base.TextModel._create_vocab_sentencepiece
def named(self, tokenizer):
    try:
        return known(self, tokenizer)
    except NotImplementedError:
        return pre
def only_with_a_model_file(self):
    if not (self.dir_model / "tokenizer.model").is_file():
        raise FileNotFoundError("no tokenizer.model")
    return sentencepiece(self)
base.TextModel.get_vocab_base_pre = named
base.TextModel._create_vocab_sentencepiece = only_with_a_model_file
sys.argv = [converter] + argv
import convert_hf_to_gguf
convert_hf_to_gguf.main()
"""


def export_gguf(model, tokenizer_dir: str | Path, out_dir: str | Path, outtype: str = "f32",
                pre_tokenizer: str = "gpt-2", timeout: float = 1800.0) -> Path:
    """Write ``model`` (an HF causal LM) with the tokenizer in ``tokenizer_dir`` as ``<out_dir>/model.gguf`` (weights
    in ``outtype``: "f32" or "bf16") through llama.cpp's converter; the folder is published whole or not at all."""
    from workbench.util.files import publish_dir

    if outtype not in OUTTYPES:
        raise ValueError(f"outtype={outtype!r}: use one of {OUTTYPES}")
    converter = converter_path()
    if converter is None:
        raise RuntimeError(unavailable() or "llama.cpp's converter not found")
    tokenizer_dir = Path(tokenizer_dir)
    files = [tokenizer_dir / f for f in _TOKENIZER_FILES if (tokenizer_dir / f).is_file()]
    if not files:
        raise FileNotFoundError(f"no tokenizer files in {tokenizer_dir}: the GGUF file needs the model's tokenizer")
    ids = _tokenizer_size(tokenizer_dir)
    if ids > model.config.vocab_size:
        raise ValueError(f"the tokenizer in {tokenizer_dir} has {ids} ids but the model's vocabulary is "
                         f"{model.config.vocab_size}: give the model's own tokenizer (or a vocabulary >= {ids})")
    with publish_dir(out_dir) as tmp:
        hf_dir = tmp / "hf"
        model.save_pretrained(hf_dir, safe_serialization=True)
        _context_length_for_the_converter(hf_dir / "config.json")
        for f in files:
            shutil.copy(f, hf_dir / f.name)
        proc = subprocess.run([sys.executable, "-c", _DRIVER, str(converter), pre_tokenizer, str(hf_dir),
                               "--outtype", outtype, "--outfile", str(tmp / "model.gguf")],
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0 or not (tmp / "model.gguf").is_file():
            raise RuntimeError(f"llama.cpp's converter failed (exit {proc.returncode}): {proc.stderr[-1500:]}")
        shutil.rmtree(hf_dir)
    return Path(out_dir) / "model.gguf"


def _context_length_for_the_converter(config_path: Path) -> None:
    """llama.cpp's GPT-2 converter reads ``n_ctx``, which transformers no longer writes for GPT-2 (only
    ``n_positions``, the same number): add it to the saved copy when missing."""
    import json

    config = json.loads(config_path.read_text())
    if "n_positions" in config and "n_ctx" not in config:
        config["n_ctx"] = config["n_positions"]
        config_path.write_text(json.dumps(config, indent=2))


def _tokenizer_size(tokenizer_dir: Path) -> int:
    from transformers import AutoTokenizer

    return len(AutoTokenizer.from_pretrained(tokenizer_dir))


class LlamaCppDecoder:
    """Greedy requests and teacher-forced scoring of a GGUF file through llama-cpp-python, one sequence (batch 1).

    Args:
        path: the GGUF file.
        n_ctx: the context (KV cache) length: at least prompt + new tokens.
        threads: threads for decode and prompt evaluation alike.
    """

    def __init__(self, path: str | Path, n_ctx: int, threads: int):
        from llama_cpp import Llama

        self.path, self.threads = Path(path), threads
        self.llm = Llama(model_path=str(path), n_ctx=n_ctx, n_batch=min(512, n_ctx), n_threads=threads,
                         n_threads_batch=threads, logits_all=False, verbose=False)
        self.label = f"llama.cpp ({self.path.parent.name}/{self.path.name}, {threads} threads)"
        self.n_vocab = self.llm.n_vocab()

    def _eval(self, tokens: list[int]):
        """Evaluate ``tokens`` after what the cache holds; llama.cpp's logits of the last one (a view of its buffer,
        valid until the next eval: ``Llama.eval`` keeps no logits unless every position's are asked for)."""
        import llama_cpp
        import numpy as np

        self.llm.eval(tokens)
        return np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(self.llm.ctx, -1), shape=(self.n_vocab,))

    def generate(self, input_ids: torch.Tensor, max_new_tokens: int) -> DecodeResult:
        """One request: exactly ``max_new_tokens`` greedy tokens after the prompt ``input_ids`` [1, T]."""
        if input_ids.shape[0] != 1:
            raise ValueError(f"llama.cpp's Llama decodes one sequence per context: batch 1, got {input_ids.shape[0]}")
        prompt = input_ids[0].tolist()
        self.llm.reset()   # n_tokens = 0: the next eval drops the cache, no prefix reuse from the last request
        steps = StepClock(torch.device("cpu"))
        new = [int(self._eval(prompt).argmax())]
        steps.mark()
        for _ in range(max_new_tokens - 1):
            new.append(int(self._eval(new[-1:]).argmax()))
            steps.mark()
        tokens = torch.tensor([prompt + new], dtype=torch.long)
        times = steps.times()
        return DecodeResult(tokens, steps.start, times, [1] * len(times), notes=self.label)

    def score(self, input_ids: torch.Tensor) -> torch.Tensor:
        """llama.cpp's next-token logits [1, T - 1, V] of ``input_ids`` [1, T], teacher forced through the steps
        :meth:`generate` times (the first token evaluated alone, then one token per ``eval``)."""
        ids = input_ids[0].tolist()
        self.llm.reset()
        rows = [torch.from_numpy(self._eval(ids[:1]).copy())]
        for token in ids[1:-1]:
            rows.append(torch.from_numpy(self._eval([token]).copy()))
        return torch.stack(rows)[None].float()

    def close(self) -> None:
        """Free the model and its context now (not whenever the object is collected)."""
        self.llm.close()


__all__ = ["LlamaCppDecoder", "export_gguf", "converter_path", "unavailable", "INSTALL", "OUTTYPES"]
