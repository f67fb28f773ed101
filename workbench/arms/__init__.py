"""The arm layer: one comparison engine for every benchmark, panel and CLI verb.

- ``base``: :class:`Arm` (name, kind, build, skip reason, baseline, notes), :class:`BuiltArm` (call, variant,
  quality on that variant, meta, close), :class:`ArmContext` (what a build gets, with a cache shared between arms).
- ``runner``: build, time interleaved (equal warm-up, seeded order per round, in one process or one per arm),
  ``compare`` = selection run -> pick -> fresh confirmation of the winner against the baseline.
- ``eligibility``: the one rule (upper end of the paired CI of the drop <= tolerance; the baseline always; no quality
  measured -> the pick is unchecked).
- ``rows``: the one row builder.
- catalogues: ``cpu`` (CPU encoder arms by ISA), ``llm`` (LLM decode arms), ``speculative``.

Import the submodules (``from workbench.arms.runner import compare``); this package imports nothing heavy.
"""
