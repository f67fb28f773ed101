"""The serving bundle: export, verify, model card, Triton config, batching plan, serving config, serve-check and
the Triton server lifecycle."""
