"""Tasks: built-in demos by name, users' local HF directories, or any nn.Module."""
from __future__ import annotations

from pathlib import Path

from workbench.tasks.base import QualityResult, Task

BUILTIN_TASKS = ("text-classification", "causal-lm")
USER_TASKS = BUILTIN_TASKS + ("text2text",)  # kinds a user's own model directory can be (text2text has no demo)


def get_task(name: str, model_dir: str | Path | None = None, data: str | Path | None = None,
             trust_remote_code: bool = False, allow_pickle: bool = False) -> Task:
    """A built-in task by name, or a user's model directory (+ data file) for that kind of task.

    Args:
        name: "text-classification", "causal-lm" or "text2text" (the last needs ``model_dir``).
        model_dir: a local HF directory to use instead of the demo weights (needs ``data`` too).
        data: JSONL/CSV with ``text`` (and ``label`` for classification; ``source`` and ``target`` for text2text).
        trust_remote_code: run the model directory's own Python code (only for a directory you trust).
        allow_pickle: accept pickled ``*.bin`` weights when there are no safetensors (only for files you trust).

    Example:
        >>> task = get_task("text-classification")                                   # doctest: +SKIP
        >>> mine = get_task("text-classification", "~/my-bert", data="eval.jsonl")    # doctest: +SKIP
    """
    if name not in USER_TASKS:
        raise ValueError(f"unknown task {name!r}: use one of {USER_TASKS}")
    if model_dir is None:
        if name not in BUILTIN_TASKS:
            raise ValueError(f"{name} has no built-in demo: pass model_dir=<local T5/BART directory> and data=<file>")
        if data is not None:
            raise ValueError("--data needs --model: the demo tasks bring their own data")
        if name == "text-classification":
            from workbench.tasks.text_classification import DocstringClassificationTask
            return DocstringClassificationTask()
        from workbench.tasks.causal_lm import PydocLMTask
        return PydocLMTask()
    if data is None:
        raise ValueError(f"a user model needs its eval data: pass data=<file.jsonl|.csv> for {model_dir}")
    from workbench.tasks import user_data
    from workbench.tasks.hf_loading import check_model_dir

    model_dir = check_model_dir(model_dir, allow_pickle)
    options = {"trust_remote_code": trust_remote_code, "allow_pickle": allow_pickle}
    if name == "text2text":
        from workbench.tasks.text2text import Text2TextTask

        return Text2TextTask(model_dir, user_data.text2text_pairs(data), **options)
    if name == "text-classification":
        import json

        from workbench.tasks.text_classification import SequenceClassificationTask

        label2id = json.loads((model_dir / "config.json").read_text()).get("label2id") or {}
        splits = user_data.classification_splits(data, label2id)
        return SequenceClassificationTask(model_dir, splits, **options)
    from workbench.tasks.causal_lm import CausalLMTask

    return CausalLMTask(model_dir, user_data.lm_documents(data), **options)


def from_module(module, eval_fn, inputs, name: str = "module", **kwargs) -> Task:
    """Task for any ``nn.Module``: see :class:`workbench.tasks.module_task.ModuleTask`."""
    from workbench.tasks.module_task import ModuleTask

    return ModuleTask(module, eval_fn, inputs, name=name, **kwargs)


Task.from_module = staticmethod(from_module)  # the spelling DESIGN.md uses: Task.from_module(module, eval_fn, inputs)

__all__ = ["Task", "QualityResult", "get_task", "from_module", "BUILTIN_TASKS", "USER_TASKS"]
