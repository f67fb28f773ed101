"""Per-kind distillation jobs: prepare (check data, score it with the teacher) then train a student.

``prepare_*`` runs every data check before training, so a bad file fails in seconds. Classification teacher
logits are computed once (the teacher is frozen and deterministic); LM teacher logits [B, T, vocab] are too
big to cache and are computed per batch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch

from workbench.steps.distill import data
from workbench.steps.distill.loop import kd_loss, train
from workbench.runtime.families import pad_id
from workbench.tasks.hf_loading import context_length


LM_VALIDATION_BLOCKS = 64   # an LM job validates on the first this many held-out blocks


@dataclass
class Job:
    epoch_batches: Callable
    step_loss: Callable
    validate: Callable
    steps_per_epoch: int
    facts: dict = field(default_factory=dict)

    def train(self, student: torch.nn.Module, config, notify: Callable) -> dict:
        torch.manual_seed(config.seed)  # dropout masks
        return train(student, self.epoch_batches, self.step_loss, self.validate, epochs=config.epochs,
                     steps_per_epoch=self.steps_per_epoch, lr=config.lr, max_steps=config.max_steps,
                     patience=config.patience, eval_every=config.eval_every, callback=notify,
                     desc="distill" if config.alpha > 0 else "no-KD")


def _shuffled(n: int, batch_size: int, seed: int, epoch: int, lengths: list[int] | None = None) -> list[torch.Tensor]:
    """Seeded random batches. With ``lengths``, each run of 16 batches is length-sorted first, so dynamic padding
    stays short (about half the tokens on docstrings) while batch order and membership stay random."""
    gen = torch.Generator().manual_seed(seed * 1000 + epoch)
    order = torch.randperm(n, generator=gen)
    if lengths is None:
        return list(order.split(batch_size))
    batches = []
    for chunk in order.split(batch_size * 16):
        chunk = chunk[torch.tensor([lengths[i] for i in chunk.tolist()]).argsort(stable=True)]
        batches.extend(chunk.split(batch_size))
    return [batches[i] for i in torch.randperm(len(batches), generator=gen).tolist()]


@torch.inference_mode()
def _classifier_logits(model, seqs: list[list[int]], pad_id: int, batch_size: int = 64) -> torch.Tensor:
    """[N, C] logits; batches are length-sorted so dynamic padding stays short, results come back in order."""
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    out = torch.empty(len(seqs), model.config.num_labels)
    for i in range(0, len(order), batch_size):
        idx = order[i:i + batch_size]
        out[idx] = model(**data.pad_batch([seqs[j] for j in idx], pad_id)).logits.float()
    return out


def _classification_transfer_set(task_name: str, teacher_config, tokenizer, config):
    """(splits, tokenised train examples, tokenised extra texts): what the classification student trains on, for its
    recipe and its sizing alike (the unlabelled extra text only with KD: no-KD cannot use it)."""
    splits = data.classification_splits(task_name, config.train_data, teacher_config, config.seed)
    extra = data.extra_texts(config.extra_data) if config.alpha > 0 else []
    return (splits, data.tokenize(tokenizer, splits.train, config.max_length),
            data.tokenize(tokenizer, extra, config.max_length))


def prepare_classification(task_name: str, teacher, tokenizer, config) -> Job:
    splits, train_x, extra = _classification_transfer_set(task_name, teacher.config, tokenizer, config)
    if splits.train_labels is None and config.alpha < 1:
        raise ValueError(f"{config.train_data} has no 'label' column but alpha={config.alpha} needs labels: "
                         "add labels, or set alpha=1.0 to distil from the teacher alone")
    pad = pad_id(tokenizer, teacher.config)
    seqs = train_x + extra
    lengths = [len(x) for x in seqs]
    labels = torch.tensor((splits.train_labels or [-100] * len(train_x)) + [-100] * len(extra))
    soft = _classifier_logits(teacher, seqs, pad) if config.alpha > 0 else None
    val_x = data.tokenize(tokenizer, splits.validation, config.max_length)
    val_y = torch.tensor(splits.validation_labels) if splits.validation_labels else \
        _classifier_logits(teacher, val_x, pad).argmax(-1)  # unlabelled: agreement with the teacher

    def epoch_batches(epoch):
        for idx in _shuffled(len(seqs), config.batch_size, config.seed, epoch, lengths):
            yield idx, data.pad_batch([seqs[i] for i in idx], pad)

    def step_loss(model, batch):
        idx, enc = batch
        logits = model(**enc).logits
        return kd_loss(logits, soft[idx] if soft is not None else None, labels[idx], config.alpha, config.temperature)

    def validate(model):
        return float((_classifier_logits(model, val_x, pad).argmax(-1) == val_y).float().mean())

    facts = {"train_examples": len(train_x), "extra_examples": len(extra), "validation_examples": len(val_x),
             "validation_metric": "accuracy" if splits.validation_labels else "teacher_agreement"}
    return Job(epoch_batches, step_loss, validate, math.ceil(len(seqs) / config.batch_size), facts)


def prepare_lm(task_name: str, teacher, tokenizer, config) -> Job:
    limit = context_length(teacher.config)
    if limit and config.max_length > limit:
        raise ValueError(f"max_length={config.max_length} exceeds the teacher's {limit} positions: lower it")
    train_docs, val_docs = data.lm_documents(task_name, config.train_data, config.seed)
    blocks = data.lm_blocks(tokenizer, train_docs + data.extra_texts(config.extra_data), config.max_length)
    val_blocks = data.lm_blocks(tokenizer, val_docs, config.max_length)[:LM_VALIDATION_BLOCKS]

    def epoch_batches(epoch):
        for idx in _shuffled(len(blocks), config.batch_size, config.seed, epoch):
            yield blocks[idx]

    def step_loss(model, ids):
        # Next-token logits [B, T-1, V] flattened to rows: token-level KD + CE on the corpus.
        s = model(input_ids=ids).logits[:, :-1]
        t = None
        if config.alpha > 0:
            with torch.inference_mode():
                t = teacher(input_ids=ids).logits[:, :-1].reshape(-1, s.shape[-1]).clone()
        return kd_loss(s.reshape(-1, s.shape[-1]), t, ids[:, 1:].reshape(-1), config.alpha, config.temperature)

    @torch.inference_mode()
    def validate(model):  # minus the mean next-token NLL: higher is better, like accuracy
        nll = [torch.nn.functional.cross_entropy(model(input_ids=b).logits[:, :-1].flatten(0, 1), b[:, 1:].flatten())
               for b in val_blocks.split(16)]
        return -float(torch.stack(nll).mean())

    facts = {"train_blocks": len(blocks), "block_len": config.max_length, "validation_blocks": len(val_blocks),
             "validation_metric": "neg_nll"}
    return Job(epoch_batches, step_loss, validate, math.ceil(len(blocks) / config.batch_size), facts)


@dataclass(frozen=True)
class Sizing:
    """What a job's training time depends on, read from the data its ``prepare_*`` would use, nothing scored."""

    transfer: int                    # examples (classifiers) or token blocks (LMs) one epoch goes through
    validation: int                  # examples (or blocks) each validation scores
    batch: dict                      # one training batch of model inputs at the transfer set's typical length
    teacher_scores_every_step: bool  # LMs: the teacher scores each training batch; classifiers: the set, once


def size_classification(task_name: str, teacher_config, tokenizer, config) -> Sizing:
    splits, train_x, extra = _classification_transfer_set(task_name, teacher_config, tokenizer, config)
    seqs = train_x + extra
    median = sorted(seqs, key=len)[len(seqs) // 2]
    batch = data.pad_batch([median] * config.batch_size, pad_id(tokenizer, teacher_config))
    return Sizing(len(seqs), len(splits.validation), batch, teacher_scores_every_step=False)


def size_lm(task_name: str, teacher_config, tokenizer, config) -> Sizing:
    train_docs, val_docs = data.lm_documents(task_name, config.train_data, config.seed)
    blocks = data.lm_blocks(tokenizer, train_docs + data.extra_texts(config.extra_data), config.max_length)
    validation = min(LM_VALIDATION_BLOCKS, len(data.lm_blocks(tokenizer, val_docs, config.max_length)))
    return Sizing(len(blocks), validation, {"input_ids": blocks[:1].repeat(config.batch_size, 1)},
                  teacher_scores_every_step=True)


# One recipe per teacher kind (see student.teacher_kind), and how to size its training without running it.
PREPARE = {"classification": prepare_classification, "causal-lm": prepare_lm}
SIZE = {"classification": size_classification, "causal-lm": size_lm}
