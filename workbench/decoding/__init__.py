"""Generation engines used by measurement: the speculative-decoding engine (``speculative``), its drafters
(``drafters``), what both ask of a causal LM (``lm``), and the lean GPT-2 draft forward (``lean_gpt2``)."""
