import pytest
import torch

from workbench.runtime.kv_budget import decode_weight_bytes
from workbench.measure.roofline import bandwidth_utilisation, copy_bandwidth, matmul_rate


def test_peaks_are_measured_and_plausible():
    gbps = copy_bandwidth("cpu", megabytes=32, repeats=3)
    tflops = matmul_rate("cpu", size=256, repeats=3)
    assert 0.1 < gbps < 10_000 and 1e-4 < tflops < 1_000


def test_weight_bytes_counts_tied_storage_once_and_mbu():
    emb = torch.nn.Embedding(100, 10)
    head = torch.nn.Linear(10, 100, bias=False)
    head.weight = emb.weight
    assert decode_weight_bytes(torch.nn.ModuleList([emb, head])) == 100 * 10 * 4   # tied to the head: read in full
    # 1 GB of weights at 50 steps/s (batch 2, 100 tokens/s) on a 100 GB/s device: 50% utilisation.
    assert bandwidth_utilisation(10**9, 100.0, 2, 100.0) == pytest.approx(0.5)


@pytest.mark.gpu
def test_cuda_peaks():
    from workbench.measure.roofline import device_peaks

    peaks = device_peaks("cuda")
    assert peaks.copy_gb_per_s > 100 and peaks.matmul_tflops > 1


def test_kv_bytes_per_position_for_gqa_llama_and_gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    from workbench.runtime.kv_budget import kv_bytes_per_position

    llama = LlamaForCausalLM(LlamaConfig(hidden_size=64, num_hidden_layers=3, num_attention_heads=8,
                                         num_key_value_heads=2, intermediate_size=32, vocab_size=32))
    assert kv_bytes_per_position(llama) == 2 * 3 * 2 * 8 * 4            # GQA: 2 KV heads of 8 dims, fp32
    assert kv_bytes_per_position(llama.to(torch.bfloat16)) == 2 * 3 * 2 * 8 * 2
    gpt2 = GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=2, n_head=4, vocab_size=32, n_positions=16))
    assert kv_bytes_per_position(gpt2) == 2 * 2 * 4 * 8 * 4
    assert kv_bytes_per_position(torch.nn.Linear(2, 2)) == 0


def test_roofline_columns_and_copy_bandwidth_at_a_thread_count():
    from workbench.measure.roofline import decode_call_bytes, roofline_columns

    # 1e8 weight bytes + batch 2 x 1000 bytes/position x 500 positions, per call
    assert decode_call_bytes(10**8, 1000, 500, 2) == 10**8 + 10**6
    cols = roofline_columns(2e8, 50.0, 20.0)           # 10 GB/s achieved of 20 GB/s
    assert cols["bandwidth_gb_s"] == pytest.approx(10.0) and cols["bandwidth_utilisation"] == pytest.approx(0.5)
    assert cols["bytes_per_token"] == 2 * 10**8
    before = torch.get_num_threads()
    assert copy_bandwidth("cpu", megabytes=16, repeats=2, threads=1) > 0.1
    assert torch.get_num_threads() == before           # the run's own count is restored
