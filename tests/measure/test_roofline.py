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


def test_read_bandwidth_and_bytes_each_arm_really_reads():
    from transformers import LlamaConfig, LlamaForCausalLM

    from workbench.runtime.kv_budget import compute_dtype, kv_bytes_per_position, resident_weight_bytes
    from workbench.measure.roofline import decode_step_bytes, read_bandwidth, roofline_columns

    before = torch.get_num_threads()
    assert 0.1 < read_bandwidth("cpu", megabytes=16, repeats=2, threads=1) < 10_000
    assert torch.get_num_threads() == before
    llama = LlamaForCausalLM(LlamaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                         num_key_value_heads=2, intermediate_size=32, vocab_size=100)).eval()
    kv = 2 * 2 * 2 * 16 * 4
    assert kv_bytes_per_position(llama) == kv
    w = decode_weight_bytes(llama)
    assert resident_weight_bytes(llama) == w + 100 * 64 * 4      # the untied input table is resident, not read
    # a static cache reads its whole max_cache_len; a dynamic one the mean filled context
    assert decode_step_bytes(llama, 2, context=10.5, static_cache_len=64) == w + 2 * kv * 64
    assert decode_step_bytes(llama, 1, context=10.5) == w + kv * 10.5
    bf = llama.to(torch.bfloat16)
    assert compute_dtype(bf) == torch.bfloat16 and kv_bytes_per_position(bf) == kv // 2   # bf16 KV for bf16 arms
    flagged = roofline_columns(2e9, 10.0, 10.0)                   # 20 GB/s "read" on a 10 GB/s device: a bug
    assert flagged["bandwidth_utilisation"] == 2.0 and "impossible" in flagged["bandwidth_flag"]
    assert "bandwidth_flag" not in roofline_columns(1e9, 5.0, 10.0)


def test_weight_only_model_keeps_fp32_kv():
    from workbench.runtime.kv_budget import compute_dtype

    class Packed(torch.nn.Module):   # an int8 weight registered first, fp32 embedding: KV follows the embedding
        def __init__(self):
            super().__init__()
            self.q = torch.nn.Parameter(torch.zeros(4, dtype=torch.int8), requires_grad=False)
            self.emb = torch.nn.Embedding(4, 4)

        def get_input_embeddings(self):
            return self.emb

    assert compute_dtype(Packed()) == torch.float32


def test_read_probe_reads_its_bytes_each_call_and_converts_a_call_time_to_gb_per_s():
    from workbench.measure.roofline import ReadProbe

    probe = ReadProbe("cpu", megabytes=4, repeats=3)
    assert probe.bytes_per_call == 3 * 4 * 2**20
    probe()                                                         # a plain call: what the runner times
    assert probe.gb_per_s(1000.0) == pytest.approx(3 * 4 * 2**20 / 1e9)   # its bytes in one second
    assert probe.gb_per_s(500.0) == pytest.approx(2 * probe.gb_per_s(1000.0))
