"""Helpers every stage shares, one copy each: files (hashing, atomic publish, the artifacts folder), settings read
from the environment (small mode), and number checks for result rows. Nothing here imports torch or onnxruntime."""
