"""Generation engines used by measurement: speculative decoding, drafters, lean draft forwards."""
