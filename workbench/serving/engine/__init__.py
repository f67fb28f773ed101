"""The LLM hand-off on a real engine: a checkpoint vLLM loads (bf16, or the workbench's weight-only int8 / int4
written as compressed-tensors), its engine arguments, Triton's vLLM-backend files, vLLM's server lifecycle on loopback,
and load tests with AIPerf (plus the workbench's own OpenAI stream client on the same schedule).

vLLM and AIPerf live in their own venvs (``make serve-env``: ``.engine-venv/``, ``.aiperf-venv/``), as a serving
team's containers would: the workbench only writes files and drives their processes, never imports them.
"""
