"""Architecture matrix: tiny random models of common Hugging Face families through every workbench step.

Each model is built locally from its transformers config (2 layers, hidden 64, vocab 1000; no hub), saved with
``save_pretrained`` beside a byte-level BPE tokenizer trained here on the demo docstrings (one fast tokenizer for
every family: T5's and ALBERT's sentencepiece tokenizers are replaced by it, since the steps only need the
tokenizer interface). Every step that applies runs on it; a cell reads ``ok`` (with what was checked),
``n/a: <reason>`` or ``FAIL: <error>``. The exported ONNX model of an architecture is shared by its later cells.

Usage::

    python scripts/architecture_matrix.py                    # writes docs/architecture_matrix.md, prints the time
    python scripts/architecture_matrix.py --arch llama gpt2  # a few rows, printed only

tests/matrix imports this module and runs the same cells (``run_arch``).
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture_matrix.md"
VOCAB, HIDDEN, FFN, LAYERS, HEADS, POSITIONS, LABELS = 1000, 64, 128, 2, 4, 80, 12
SEQ = 16  # timing / calibration length; export validates 4, 8 and 16

STEPS = ("measure", "export_onnx", "optimize_o3", "int8_dynamic_torch", "int8_dynamic_ort", "int8_static",
         "distill", "sweep", "bundle_verify", "speculative")
CHECKS = {
    "measure": "a latency row and the task metric with its CI (accuracy, perplexity or ROUGE-L)",
    "export_onnx": "validated on the batch x length grid; decoders: KV cache, ORT greedy tokens = torch's; "
                   "seq2seq: optimum's encoder + decoder graphs, greedy tokens = torch's",
    "optimize_o3": "logits within 1e-2 of the export; families ORT has no fusions for get O1 and a note",
    "int8_dynamic_torch": "torch.ao int8 Linear layers, logits within 0.5 of fp32",
    "int8_dynamic_ort": "quantised nodes in the graph, logits within 0.5 of fp32",
    "int8_static": "calibrated on every graph input (decoders: prefill + cached step with real past_key_values), "
                   "quantised nodes, logits within 0.5; decoders still generate with the cache",
    "distill": "2 KD steps to a 1-layer, half-width student whose feed-forward width (the family's own config "
               "name) is half the teacher's",
    "sweep": "batch 1 and 2 timed without failures (decoders: generation points)",
    "bundle_verify": "export_bundle then verify_bundle passes (plan allowed provisional: 0.3 s points)",
    "speculative": "a 1-layer same-family draft; output identical to greedy decoding of the target",
}
_BERTLIKE = dict(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS, intermediate_size=FFN,
                 max_position_embeddings=POSITIONS)
_LLAMALIKE = dict(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS, num_key_value_heads=2,
                  intermediate_size=FFN, max_position_embeddings=POSITIONS)
# name -> (role, transformers config class, its arguments). Roles: encoder (classifier), decoder (causal LM),
# encoder-decoder (seq2seq).
ARCHS = {
    "bert": ("encoder", "BertConfig", _BERTLIKE),
    "distilbert": ("encoder", "DistilBertConfig", dict(dim=HIDDEN, n_layers=LAYERS, n_heads=HEADS, hidden_dim=FFN,
                                                       max_position_embeddings=POSITIONS)),
    "roberta": ("encoder", "RobertaConfig", _BERTLIKE),
    "xlm-roberta": ("encoder", "XLMRobertaConfig", _BERTLIKE),
    "deberta-v2": ("encoder", "DebertaV2Config", dict(_BERTLIKE, relative_attention=True, pos_att_type=["p2c", "c2p"],
                                                      position_buckets=32, norm_rel_ebd="layer_norm",
                                                      share_att_key=True, type_vocab_size=0)),
    "electra": ("encoder", "ElectraConfig", dict(_BERTLIKE, embedding_size=HIDDEN)),
    "albert": ("encoder", "AlbertConfig", dict(_BERTLIKE, embedding_size=32)),
    "gpt2": ("decoder", "GPT2Config", dict(n_embd=HIDDEN, n_layer=LAYERS, n_head=HEADS, n_positions=POSITIONS)),
    "llama": ("decoder", "LlamaConfig", _LLAMALIKE),
    "mistral": ("decoder", "MistralConfig", _LLAMALIKE),
    "qwen2": ("decoder", "Qwen2Config", _LLAMALIKE),
    "phi3": ("decoder", "Phi3Config", dict(_LLAMALIKE, original_max_position_embeddings=POSITIONS)),
    "gpt-neox": ("decoder", "GPTNeoXConfig", dict(_BERTLIKE, rotary_pct=0.5)),
    "opt": ("decoder", "OPTConfig", dict(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                                         ffn_dim=FFN, max_position_embeddings=POSITIONS, word_embed_proj_dim=HIDDEN)),
    "gemma": ("decoder", "GemmaConfig", dict(_LLAMALIKE, num_key_value_heads=1, head_dim=16)),
    "t5": ("encoder-decoder", "T5Config", dict(d_model=HIDDEN, d_ff=FFN, d_kv=16, num_layers=LAYERS,
                                               num_heads=HEADS, decoder_start_token_id=0)),
    "bart": ("encoder-decoder", "BartConfig", dict(d_model=HIDDEN, encoder_layers=LAYERS, decoder_layers=LAYERS,
                                                   encoder_attention_heads=HEADS, decoder_attention_heads=HEADS,
                                                   encoder_ffn_dim=FFN, decoder_ffn_dim=FFN,
                                                   max_position_embeddings=POSITIONS)),
}
# Token ids of the shared tokenizer's special tokens (trained first, so they get these ids).
SPECIALS = ("<pad>", "<unk>", "<s>", "</s>", "<mask>")
PAD, UNK, BOS, EOS = 0, 1, 2, 3


def small_texts(split: str, n: int) -> tuple[list[str], list[int]]:
    from workbench.tasks.demo_data import docstring_split

    texts, labels = docstring_split(split)
    return texts[:n], labels[:n]


def tokenizer_dir(root: Path) -> Path:
    """A byte-level BPE (vocab 1000) trained on demo docstrings, saved once under ``root/tokenizer``."""
    out = root / "tokenizer"
    if (out / "tokenizer.json").is_file():
        return out
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=list(SPECIALS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(small_texts("train", 400)[0], trainer)
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    return out


def hf_tokenizer(root: Path, role: str):
    """Encoders pad with <pad>; decoders get no pad token, as GPT-2 / Llama checkpoints ship (steps must cope)."""
    from transformers import PreTrainedTokenizerFast

    specials = dict(unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    if role != "decoder":
        specials.update(pad_token="<pad>", cls_token="<s>", sep_token="</s>", mask_token="<mask>")
    return PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_dir(root) / "tokenizer.json"),
                                   model_input_names=["input_ids", "attention_mask"], **specials)


def model_config(arch: str, layers: int = LAYERS):
    import transformers

    role, cls_name, kwargs = ARCHS[arch]
    cfg = getattr(transformers, cls_name)(vocab_size=VOCAB, bos_token_id=BOS, eos_token_id=EOS, **kwargs)
    cfg.pad_token_id = None if role == "decoder" else PAD  # decoders: no pad token, like their checkpoints
    cfg.num_hidden_layers = layers  # every family maps the generic name onto its own (n_layer, num_layers, ...)
    if getattr(cfg, "layer_types", None):  # per-layer attention kinds (Qwen2, Gemma2, ...) follow the depth
        cfg.layer_types = cfg.layer_types[:layers]
    if role == "encoder":
        cfg.num_labels = LABELS
    return cfg


def build_model(arch: str, root: Path, layers: int = LAYERS, name: str | None = None) -> Path:
    """Seeded random model + tokenizer saved at ``root/<name or arch>`` (reused when already there)."""
    import torch
    import transformers

    out = root / (name or arch)
    if (out / "config.json").is_file():
        return out
    role = ARCHS[arch][0]
    auto = {"encoder": "AutoModelForSequenceClassification", "decoder": "AutoModelForCausalLM",
            "encoder-decoder": "AutoModelForSeq2SeqLM"}[role]
    torch.manual_seed(layers)
    model = getattr(transformers, auto).from_config(model_config(arch, layers))
    model.save_pretrained(out, safe_serialization=True)
    hf_tokenizer(root, role).save_pretrained(out)
    return out


def make_task(arch: str, root: Path):
    """The workbench task of the model: a local classifier or causal LM with demo text (small splits)."""
    role = ARCHS[arch][0]
    model_dir = build_model(arch, root)
    if role == "encoder":
        from workbench.tasks.text_classification import SequenceClassificationTask

        splits = {"test": small_texts("test", 24), "validation": small_texts("validation", 16)}
        return SequenceClassificationTask(model_dir, splits, name=f"matrix-{arch}", max_length=SEQ)
    if role == "decoder":
        from workbench.tasks.causal_lm import CausalLMTask

        draft = build_model(arch, root, layers=1, name=f"{arch}-draft")
        docs = {"test": small_texts("test", 40)[0], "validation": small_texts("validation", 40)[0]}
        return CausalLMTask(model_dir, docs, name=f"matrix-{arch}", block_len=SEQ, draft_dir=draft)
    from workbench.tasks.text2text import Text2TextTask  # the cells say "pending" while it is missing

    texts = small_texts("test", 24)[0]
    pairs = [(t, t.split(".")[0]) for t in texts]  # summarise a docstring as its first sentence
    return Text2TextTask(model_dir, {"test": pairs[:12], "validation": pairs[12:]}, name=f"matrix-{arch}",
                         max_source_len=SEQ, max_new_tokens=8)


def train_file(root: Path, arch: str) -> str:
    """JSONL transfer data for distillation (text + label for classifiers; text for LMs)."""
    import json

    path = root / f"{arch}-train.jsonl"
    texts, labels = small_texts("train", 48)
    lines = [{"text": t, "label": y} if ARCHS[arch][0] == "encoder" else {"text": t} for t, y in zip(texts, labels)]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return str(path)


def run_arch(arch: str, root: Path, steps: tuple[str, ...] = STEPS) -> dict[str, str]:
    """Every step of ``steps`` on one architecture: {step: cell}. A cell that raises becomes ``FAIL: ...``."""
    from matrix_cells import CELLS, State  # noqa: E402 (beside this script)

    root.mkdir(parents=True, exist_ok=True)
    state = State(arch, ARCHS[arch][0], root)
    row = {}
    for step in steps:
        try:
            row[step] = CELLS[step](state)
        except Exception as exc:  # the table says what failed; the run goes on with the next cell
            message = " ".join(f"{type(exc).__name__}: {exc}".split())
            row[step] = "FAIL: " + (message[:220] + "..." if len(message) > 220 else message)
    return row


def render(table: dict[str, dict[str, str]]) -> str:
    """The committed markdown: one row per architecture, one column per step."""
    lines = ["# Architecture matrix", "",
             "Generated by `python scripts/architecture_matrix.py` (tiny random models built locally from transformers",
             "configs: 2 layers, hidden 64, vocab 1000; byte-level BPE tokenizer trained on the demo docstrings, used",
             "for every family, sentencepiece ones included). `tests/matrix` runs the same cells and checks this",
             "table.",
             "", "What a cell checks before it says ok:", "",
             *[f"- `{step}`: {what}" for step, what in CHECKS.items()],
             "", "| architecture | role | " + " | ".join(STEPS) + " |",
             "|" + "---|" * (len(STEPS) + 2)]
    for arch, row in table.items():
        lines.append(f"| {arch} | {ARCHS[arch][0]} | " + " | ".join(row.get(s, "-") for s in STEPS) + " |")
    return "\n".join(lines) + "\n"


def run_matrix(archs, root: Path) -> tuple[dict[str, dict[str, str]], float]:
    start = time.perf_counter()
    table = {arch: run_arch(arch, root / arch) for arch in archs}
    return table, time.perf_counter() - start


def main(argv=None) -> int:
    import os
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", nargs="*", choices=list(ARCHS), help="only these rows (printed, doc untouched)")
    args = parser.parse_args(argv)
    os.environ.setdefault("WORKBENCH_SMALL", "1")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["WORKBENCH_ARTIFACTS"] = str(Path(tmp) / "artifacts")
        table, seconds = run_matrix(args.arch or list(ARCHS), Path(tmp))
    text = render(table)
    print(text)
    if not args.arch:
        DOC.write_text(text)
        print(f"wrote {DOC}")
    fails = sum(cell.startswith("FAIL") for row in table.values() for cell in row.values())
    print(f"{len(table)} architectures x {len(STEPS)} steps in {seconds:.0f} s ({math.ceil(seconds / 60)} min); "
          f"{fails} FAIL")
    return 1 if fails else 0


sys.path.insert(0, str(Path(__file__).resolve().parent))  # matrix_cells sits beside this script

if __name__ == "__main__":
    raise SystemExit(main())
