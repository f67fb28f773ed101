"""Serving hand-off: bundle (ONNX + Triton repository + model card + manifest), verify, serve-check."""
