"""One Triton serving configuration (the knobs the load search turns) and how it edits a ``config.pbtxt``.

``ServingConfig`` holds only what Triton Model Analyzer searches for a CPU model: ``max_batch_size``, the dynamic
batcher's ``preferred_batch_size`` and ``max_queue_delay_microseconds``, and the instance count (with the intra-op
threads each instance gets, so that instances x threads does not oversubscribe the cores the bundle was measured on).
Everything else in the bundle's config (name, tensors, backend) is kept as exported.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

MAX_QUEUE_DELAY_US = 100_000  # same cap as the offline plan: never hold a request more than 100 ms for a batch


@dataclass(frozen=True)
class ServingConfig:
    """Triton batching and instance settings.

    ``dynamic_batching=False`` runs every request alone (batch 1) whatever ``max_batch_size`` says; ``threads`` is the
    ORT intra-op count per instance (None: keep the bundle's).
    """

    max_batch_size: int = 8
    dynamic_batching: bool = True
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_delay_us: int = 0
    instance_count: int = 1
    threads: int | None = None

    def __post_init__(self):
        if self.max_batch_size < 1:
            raise ValueError(f"max_batch_size {self.max_batch_size} must be >= 1 (the bundle's model has a batch "
                             "dimension; use dynamic_batching=False to serve one request at a time)")
        bad = [b for b in self.preferred_batch_sizes if not 1 <= b <= self.max_batch_size]
        if bad:
            raise ValueError(f"preferred_batch_sizes {bad} must lie in 1..max_batch_size ({self.max_batch_size})")
        if not 0 <= self.max_queue_delay_us <= MAX_QUEUE_DELAY_US:
            raise ValueError(f"max_queue_delay_us {self.max_queue_delay_us} must be 0..{MAX_QUEUE_DELAY_US}")
        if not self.dynamic_batching and (self.preferred_batch_sizes or self.max_queue_delay_us):
            raise ValueError("preferred_batch_sizes / max_queue_delay_us need dynamic_batching=True")
        if not 1 <= self.instance_count <= 16:
            raise ValueError(f"instance_count {self.instance_count} must be 1..16")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads {self.threads} must be >= 1 (or None to keep the bundle's)")
        object.__setattr__(self, "preferred_batch_sizes", tuple(sorted(set(self.preferred_batch_sizes))))

    @classmethod
    def no_batching(cls, max_batch_size: int = 1, threads: int | None = None) -> "ServingConfig":
        """One request per execution, one instance: what a bundle without dynamic batching serves."""
        return cls(max_batch_size=max_batch_size, dynamic_batching=False, threads=threads)

    @classmethod
    def from_model_config(cls, cfg) -> "ServingConfig":
        """The settings a parsed ModelConfig (``triton_config.check_model_config``) already has."""
        threads = cfg.parameters["intra_op_thread_count"].string_value if "intra_op_thread_count" in cfg.parameters \
            else None
        count = sum(g.count for g in cfg.instance_group) or 1
        batching = cfg.HasField("dynamic_batching")
        db = cfg.dynamic_batching
        return cls(max_batch_size=max(cfg.max_batch_size, 1), dynamic_batching=batching,
                   preferred_batch_sizes=tuple(db.preferred_batch_size) if batching else (),
                   max_queue_delay_us=int(db.max_queue_delay_microseconds) if batching else 0,
                   instance_count=count, threads=int(threads) if threads else None)

    def apply(self, cfg) -> None:
        """Write these settings into a parsed ModelConfig in place (tensors, name and backend untouched)."""
        cfg.max_batch_size = self.max_batch_size
        cfg.ClearField("dynamic_batching")
        if self.dynamic_batching:
            cfg.dynamic_batching.preferred_batch_size.extend(self.preferred_batch_sizes)
            cfg.dynamic_batching.max_queue_delay_microseconds = self.max_queue_delay_us
        kind = cfg.instance_group[0].kind if cfg.instance_group else None
        cfg.ClearField("instance_group")
        group = cfg.instance_group.add(count=self.instance_count)
        if kind is not None:
            group.kind = kind
        if self.threads is not None:
            cfg.parameters["intra_op_thread_count"].string_value = str(self.threads)

    def label(self) -> str:
        """Short readable name, e.g. ``b8 q2000us pref[8] x2 t1`` or ``no-batching x1``."""
        head = (f"b{self.max_batch_size} q{self.max_queue_delay_us}us"
                + (f" pref{list(self.preferred_batch_sizes)}" if self.preferred_batch_sizes else "")
                if self.dynamic_batching else "no-batching")
        return head + f" x{self.instance_count}" + (f" t{self.threads}" if self.threads else "")

    def as_dict(self) -> dict:
        return {**asdict(self), "preferred_batch_sizes": list(self.preferred_batch_sizes), "label": self.label()}


def edited_config_text(text: str, serving: ServingConfig, expected_name: str | None = None) -> str:
    """``config.pbtxt`` text with ``serving`` written in, checked against Triton's schema and load rules."""
    from google.protobuf import text_format

    from workbench.serving.bundle.triton_config import check_model_config

    cfg = check_model_config(text, expected_name=expected_name)
    serving.apply(cfg)
    out = text_format.MessageToString(cfg)
    check_model_config(out, expected_name=expected_name)
    return out


__all__ = ["ServingConfig", "edited_config_text", "MAX_QUEUE_DELAY_US"]
