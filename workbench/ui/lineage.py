"""A row's lineage as people read it: each step with only the config fields that differ from that step's defaults
(``baseline → export_onnx → quantize_static(per_channel=False)``), for hover text, tables and the report."""
from __future__ import annotations

import dataclasses
from functools import lru_cache


def lineage_text(row: dict) -> str:
    """``baseline → export_onnx → quantize_static(per_channel=False)`` from a row's lineage: each step with the
    fields of its config that differ from that config's defaults (see :func:`config_changes`)."""
    parts = ["baseline"]
    for step, config in row.get("lineage") or []:
        args = ", ".join(f"{k}={v}" for k, v in config_changes(step, config).items())
        parts.append(f"{step}({args})" if args else step)
    return " → ".join(parts)


def config_changes(step: str, config: dict | None) -> dict:
    """The fields of a saved step config (``config_to_dict``) that differ from its config type's defaults.

    The type comes from the registry (by the saved ``type`` tag, else by the step name) after
    ``workbench.steps.discover()``; for a type it does not know, every field that is set (not None) is kept.

    Example:
        >>> config_changes("quantize_dynamic", {"type": "QuantizeDynamicConfig", "per_channel": True, "threads": None})
        {'per_channel': True}
    """
    args = {k: v for k, v in (config or {}).items() if k != "type"}
    cfg_type = _config_type(step, (config or {}).get("type"))
    if cfg_type is None:
        return {k: v for k, v in args.items() if v is not None}
    defaults = _config_defaults(cfg_type)
    return {k: v for k, v in args.items() if k not in defaults or _plain(v) != defaults[k]}


@lru_cache(maxsize=1)
def _discover_steps() -> None:
    import workbench.steps

    workbench.steps.discover()


def _config_type(step: str, type_name: str | None):
    from workbench.core import registered_steps

    _discover_steps()
    steps = registered_steps()
    by_name = {cfg.__name__: cfg for cfg in steps.values()}
    return by_name.get(type_name) or steps.get(step)


def _config_defaults(cfg_type: type) -> dict:
    """Each field's default as ``config_to_dict`` saves it (a field without a default is always shown)."""
    from workbench.core import config_to_dict

    try:
        return {k: _plain(v) for k, v in config_to_dict(cfg_type()).items() if k != "type"}
    except Exception:  # noqa: BLE001 - a config that cannot be built bare: read its fields' own defaults
        out = {}
        for f in dataclasses.fields(cfg_type):
            if f.default is not dataclasses.MISSING:
                out[f.name] = _plain(f.default)
            elif f.default_factory is not dataclasses.MISSING:
                out[f.name] = _plain(f.default_factory())
        return out


def _plain(value):
    """A config value as JSON holds it (tuples as lists), so saved and default values compare equal."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


__all__ = ["lineage_text", "config_changes"]
