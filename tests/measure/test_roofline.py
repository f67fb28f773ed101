import pytest
import torch

from workbench.measure.roofline import bandwidth_utilisation, copy_bandwidth, matmul_rate, weight_bytes


def test_peaks_are_measured_and_plausible():
    gbps = copy_bandwidth("cpu", megabytes=32, repeats=3)
    tflops = matmul_rate("cpu", size=256, repeats=3)
    assert 0.1 < gbps < 10_000 and 1e-4 < tflops < 1_000


def test_weight_bytes_counts_tied_storage_once_and_mbu():
    emb = torch.nn.Embedding(100, 10)
    head = torch.nn.Linear(10, 100, bias=False)
    head.weight = emb.weight
    assert weight_bytes(torch.nn.ModuleList([emb, head])) == 100 * 10 * 4
    # 1 GB of weights at 50 steps/s (batch 2, 100 tokens/s) on a 100 GB/s device: 50% utilisation.
    assert bandwidth_utilisation(10**9, 100.0, 2, 100.0) == pytest.approx(0.5)


@pytest.mark.gpu
def test_cuda_peaks():
    from workbench.measure.roofline import device_peaks

    peaks = device_peaks("cuda")
    assert peaks.copy_gb_per_s > 100 and peaks.matmul_tflops > 1
