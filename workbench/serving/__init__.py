"""Serving hand-off: ``bundle/`` (the bundle, verify, model card, Triton config, plan, serving config, serve-check,
the Triton server lifecycle) and ``load/`` (arrival schedule, the one KServe v2 client, the pinned client process,
open-loop runs, capacity / rate ladder / goodput, the serving-config search, streamed LM load)."""
