"""Tiny random causal LMs shared by the decoding tests (imported as ``from tiny_lms import ...``: pytest puts each test
folder on the path). Same arguments, same seed: the same weights, so a test can build a target and its draft apart."""
import copy

import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

HF_INIT = 0.02   # transformers' default initializer_range; 0.3 (the default here) gives peaked, non-degenerate
                 # next-token distributions, so greedy and speculative paths diverge when they should


def tiny_gpt2(layers=2, embd=64, seed=0, positions=128, vocab=64, heads=2, init=0.3, **config):
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=vocab, n_embd=embd, n_layer=layers, n_head=heads, n_positions=positions,
                     initializer_range=init, **config)
    return GPT2LMHeadModel(cfg).eval()


def tiny_llama(layers=2, hidden=64, seed=0, vocab=64, init=0.3):
    torch.manual_seed(seed)
    cfg = LlamaConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                      intermediate_size=2 * hidden, vocab_size=vocab, max_position_embeddings=128,
                      initializer_range=init)
    return LlamaForCausalLM(cfg).eval()


def perturbed(model, scale=0.1, seed=1):
    """A draft that agrees with ``model`` often but not always: full accepts and rejections (rollbacks) both happen."""
    out = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in out.parameters():
            p.add_(scale * p.std() * torch.randn(p.shape, generator=gen))
    return out
