"""The distillation loss and a small training loop with validation-based early stopping."""
from __future__ import annotations

import math
from typing import Callable, Iterable

import torch
import torch.nn.functional as F


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor | None, labels: torch.Tensor | None,
            alpha: float, temperature: float) -> torch.Tensor:
    """``alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(labels)`` over rows of [N, C] logits.

    KL is the Hinton direction (teacher distribution as target); ``T^2`` keeps its gradients on the CE scale.
    Labels of -100 (unlabelled transfer text) only get the KD term. alpha=0 is the labels-only ablation.
    """
    loss = student_logits.new_zeros(())
    if alpha > 0:
        t = temperature
        kl = F.kl_div(F.log_softmax(student_logits / t, -1), F.log_softmax(teacher_logits.float() / t, -1),
                      log_target=True, reduction="batchmean")
        loss = loss + alpha * t * t * kl
    if alpha < 1 and labels is not None and bool((labels != -100).any()):
        loss = loss + (1 - alpha) * F.cross_entropy(student_logits, labels, ignore_index=-100)
    return loss


def lr_at(step: int, total: int, peak: float, warmup_frac: float = 0.06) -> float:
    """Linear warm-up then cosine decay to zero (the usual fine-tuning schedule)."""
    warmup = max(1, int(total * warmup_frac))
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


def train(model: torch.nn.Module, epoch_batches: Callable[[int], Iterable], step_loss: Callable,
          validate: Callable[[torch.nn.Module], float], *, epochs: int, steps_per_epoch: int, lr: float,
          max_steps: int | None, patience: int, eval_every: int | None, callback: Callable | None = None,
          desc: str = "distill", weight_decay: float = 0.01) -> dict:
    """Train ``model`` in place and restore the weights of its best validation score (higher is better).

    ``epoch_batches(epoch)`` yields batches; ``step_loss(model, batch)`` returns the loss; ``validate(model)``
    runs in eval mode. Stops after ``patience`` validations without improvement or at ``max_steps``.
    ``callback(event, step, value)`` sees every "loss" and "val" point (the notebook's live curve).
    Returns the history: losses, validation scores, best score, steps run, whether it stopped early.
    """
    from tqdm.auto import tqdm

    total = min(epochs * steps_per_epoch, max_steps or math.inf)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    hist = {"loss": [], "val": [], "best_val": -math.inf, "steps": 0, "stopped_early": False}
    best_state, since_best, step = None, 0, 0
    bar = tqdm(total=int(total), desc=desc, mininterval=1)

    def check() -> bool:  # validate, keep the best weights; True when patience ran out
        nonlocal best_state, since_best
        score = float(validate(model.eval()))
        model.train()
        hist["val"].append([step, score])
        if callback:
            callback("val", step, score)
        if score > hist["best_val"]:
            hist["best_val"], since_best = score, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            since_best += 1
        return since_best >= patience

    model.train()
    done = False
    for epoch in range(epochs):
        for batch in epoch_batches(epoch):
            for group in opt.param_groups:
                group["lr"] = lr_at(step, int(total), lr)
            loss = step_loss(model, batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            hist["loss"].append([step, round(loss.item(), 5)])
            if callback:
                callback("loss", step, loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
            done = step >= total or (eval_every and step % eval_every == 0 and check())
            if done:
                break
        if done or step >= total:
            break
        if not eval_every and check():
            hist["stopped_early"] = True
            break
    hist["stopped_early"] = hist["stopped_early"] or (step < total)
    if not hist["val"] or hist["val"][-1][0] != step:
        check()
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    hist["steps"] = step
    return hist
