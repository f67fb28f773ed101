"""Train the demo tasks' tokenizers and models, seeded, on 2 CPU cores.

    python -m workbench.assets.train_demo_models            # everything, in order: classifier, LM, draft
    python -m workbench.assets.train_demo_models --only classifier

Writes HF model directories under ``workbench/assets/models/`` (config, fp16 safetensors, tokenizer,
``training.json`` with the command, wall time and held-out metrics). Weights are stored in fp16 to keep
the repository small; every loader in workbench reads them back as fp32.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from workbench.tasks.demo_data import corpus_split, docstring_label_names, docstring_split

MODELS_DIR = Path(__file__).parent / "models"
VOCAB_SIZE = 4096
LM_CONTEXT = 128
SPECS = {
    # name: (architecture kwargs, steps, batch size, peak learning rate)
    "docstring-bert": (dict(hidden_size=192, num_hidden_layers=4, num_attention_heads=3, intermediate_size=768,
                            max_position_embeddings=128), 900, 32, 1e-3),
    "pydoc-gpt2": (dict(n_embd=256, n_layer=6, n_head=4, n_positions=256), 1000, 16, 1.5e-3),
    # The draft learns from the target's logits (token-level KD), so it agrees with the target's greedy
    # choices more often than a draft trained on the text alone: that agreement is speculative decoding's alpha.
    "pydoc-gpt2-draft": (dict(n_embd=128, n_layer=2, n_head=2, n_positions=256), 1500, 16, 3e-3),
}


def train_wordpiece(texts):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=VOCAB_SIZE, special_tokens=specials))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    tok.decoder = decoders.WordPiece()
    return BertTokenizerFast(tokenizer_object=tok, model_max_length=128)


def train_bytelevel_bpe(texts):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2TokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    return GPT2TokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                             unk_token="<|endoftext|>", model_max_length=256)


def cosine_lr(step, total, peak, warmup=50):
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def run_steps(model, batches, steps, lr, desc, loss_fn=None):
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    model.train()
    bar = tqdm(range(steps), desc=desc, mininterval=5)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, steps, lr)
        batch = next(batches)
        loss = loss_fn(model, batch) if loss_fn else model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()


def save(model, tokenizer, name, record):
    out = MODELS_DIR / name
    out.mkdir(parents=True, exist_ok=True)
    model.half().save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    (out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({name: record["metrics"]}))


def train_classifier(seed=0):
    from transformers import BertConfig, BertForSequenceClassification

    arch, steps, batch, lr = SPECS["docstring-bert"]
    texts, labels = docstring_split("train")
    tokenizer = train_wordpiece(texts)
    names = docstring_label_names()
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=VOCAB_SIZE, num_labels=len(names), id2label=dict(enumerate(names)),
                        label2id={n: i for i, n in enumerate(names)}, **arch)
    model = BertForSequenceClassification(config)
    enc = tokenizer(texts, truncation=True, max_length=128, padding="max_length", return_tensors="pt")
    y = torch.tensor(labels)
    gen = torch.Generator().manual_seed(seed)

    def batches():
        while True:
            for idx in torch.randperm(len(y), generator=gen).split(batch):
                yield {"input_ids": enc["input_ids"][idx], "attention_mask": enc["attention_mask"][idx], "labels": y[idx]}

    run_steps(model, batches(), steps, lr, "docstring-bert")
    from workbench.tasks.text_classification import classifier_accuracy

    metrics = {split: classifier_accuracy(model, tokenizer, *docstring_split(split)) for split in ("validation", "test")}
    return model, tokenizer, metrics


def lm_token_blocks(tokenizer, split):
    ids = []
    for doc in corpus_split(split):
        ids.extend(tokenizer(doc)["input_ids"] + [tokenizer.eos_token_id])
    n = len(ids) // LM_CONTEXT
    return torch.tensor(ids[: n * LM_CONTEXT]).view(n, LM_CONTEXT)


def kd_loss(teacher, temperature=1.0, kd_weight=0.7):
    """Token-level distillation: ``kd_weight * T^2 * KL(teacher || student) + (1 - kd_weight) * CE``."""
    import torch.nn.functional as F

    def loss(student, batch):
        out = student(**batch)
        with torch.no_grad():
            t_logits = teacher(input_ids=batch["input_ids"]).logits
        kl = F.kl_div(F.log_softmax(out.logits / temperature, -1), F.log_softmax(t_logits / temperature, -1),
                      log_target=True, reduction="batchmean") / out.logits.shape[1]
        return kd_weight * temperature**2 * kl + (1 - kd_weight) * out.loss

    return loss


def train_lm(name, tokenizer, seed=0, teacher=None):
    from transformers import GPT2Config, GPT2LMHeadModel

    arch, steps, batch, lr = SPECS[name]
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB_SIZE, bos_token_id=tokenizer.eos_token_id,
                                       eos_token_id=tokenizer.eos_token_id, **arch))
    blocks = lm_token_blocks(tokenizer, "train")
    gen = torch.Generator().manual_seed(seed)

    def batches():
        while True:
            for idx in torch.randperm(len(blocks), generator=gen).split(batch):
                yield {"input_ids": blocks[idx], "labels": blocks[idx]}

    run_steps(model, batches(), steps, lr, name, kd_loss(teacher.eval()) if teacher is not None else None)
    from workbench.tasks.causal_lm import lm_metrics

    metrics = {split: lm_metrics(model, lm_token_blocks(tokenizer, split)) for split in ("validation", "test")}
    return model, metrics


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["classifier", "lm", "draft"],
                        help="train one model only (draft distils from the saved LM target)")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    env = {"python": platform.python_version(), "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
           "threads": torch.get_num_threads()}
    if args.only in (None, "classifier"):
        start = time.perf_counter()
        model, tok, metrics = train_classifier()
        save(model, tok, "docstring-bert", {"command": "python -m workbench.assets.train_demo_models --only classifier",
                                            "spec": SPECS["docstring-bert"], "seconds": round(time.perf_counter() - start),
                                            "metrics": metrics, "environment": env})
    if args.only in (None, "lm"):
        start = time.perf_counter()
        tokenizer = train_bytelevel_bpe(corpus_split("train"))
        model, metrics = train_lm("pydoc-gpt2", tokenizer)
        save(model, tokenizer, "pydoc-gpt2", {"command": "python -m workbench.assets.train_demo_models --only lm",
                                              "spec": SPECS["pydoc-gpt2"], "seconds": round(time.perf_counter() - start),
                                              "metrics": metrics, "environment": env})
    if args.only in (None, "draft"):
        from workbench.tasks.hf_loading import load_hf_model, load_tokenizer

        start = time.perf_counter()
        target_dir = MODELS_DIR / "pydoc-gpt2"
        teacher = load_hf_model(target_dir, "AutoModelForCausalLM")
        tokenizer = load_tokenizer(target_dir)
        model, metrics = train_lm("pydoc-gpt2-draft", tokenizer, teacher=teacher)
        save(model, tokenizer, "pydoc-gpt2-draft", {"command": "python -m workbench.assets.train_demo_models --only draft",
                                                    "spec": SPECS["pydoc-gpt2-draft"], "distilled_from": "pydoc-gpt2",
                                                    "seconds": round(time.perf_counter() - start),
                                                    "metrics": metrics, "environment": env})


if __name__ == "__main__":
    main()
