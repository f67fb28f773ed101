"""The demo causal LM served as a decoupled (streaming) Triton Python model: its streamed tokens are the greedy
tokens of its ONNX graph, and the open-loop stream generator measures TTFT / TPOT / ITL on it."""
import json
import urllib.request

import numpy as np
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.serial]  # starts a Triton server streaming the demo LM

NEW_TOKENS = 6


@pytest.fixture(scope="module")
def lm_server(tmp_path_factory):
    from workbench.core import apply
    from workbench.serving.load.lm_stream import lm_stream_repository
    from workbench.serving.bundle.triton_server import TritonServer, triton_distribution
    from workbench.steps.export_onnx import ExportOnnxConfig
    from workbench.tasks import get_task

    work = tmp_path_factory.mktemp("lm")
    task = get_task("causal-lm")
    onnx = apply(task.baseline(), ExportOnnxConfig(with_past=False, out_dir=str(work / "onnx")))  # no KV cache
    prompt = task.example_inputs(1, 12)["input_ids"][0].tolist()
    dist = triton_distribution()
    backends, repo = lm_stream_repository(onnx.artifact_path, "lm-stream", work / "triton", dist)
    with TritonServer(repo, backends, dist, work / "server.log") as server:
        yield server, onnx.artifact_path, [int(t) for t in prompt]


def _greedy(onnx_path, prompt, n):
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    ids, out = np.array([prompt], np.int64), []
    for _ in range(n):
        feed = {"input_ids": ids}
        if "attention_mask" in names:
            feed["attention_mask"] = np.ones_like(ids)
        if "position_ids" in names:
            feed["position_ids"] = np.arange(ids.shape[1], dtype=np.int64)[None, :]
        token = int(session.run(None, feed)[0][0, -1].argmax())
        out.append(token)
        ids = np.concatenate([ids, [[token]]], axis=1)
    return out


@pytest.mark.integration
def test_streamed_tokens_are_the_greedy_tokens(lm_server):
    server, onnx_path, prompt = lm_server
    body = json.dumps({"INPUT_IDS": prompt, "MAX_NEW_TOKENS": NEW_TOKENS}).encode()
    request = urllib.request.Request(f"http://{server.url}/v2/models/lm-stream/generate_stream", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        events = [json.loads(line[5:]) for line in response if line.startswith(b"data:")]
    tokens = [e["TOKEN"][0] if isinstance(e["TOKEN"], list) else e["TOKEN"] for e in events]
    assert tokens == _greedy(onnx_path, prompt, NEW_TOKENS)


@pytest.mark.integration
def test_open_loop_stream_on_the_lm(lm_server):
    from workbench.serving.load.stream import open_loop_stream

    server, _, prompt = lm_server
    res = open_loop_stream(server.url, "lm-stream", lambda i: {"INPUT_IDS": prompt, "MAX_NEW_TOKENS": NEW_TOKENS},
                           rate_per_s=2, n_requests=12, warmup_s=0.5, seed=1)
    print("\n", {k: v for k, v in res.as_row().items() if "_n" not in k and "note" not in k})
    assert res.errors == 0 and res.tokens_mean == NEW_TOKENS
    assert res.ttft["ttft_p50_ms"] > 0 and res.tpot["tpot_p50_ms"] > 0
    assert res.itl["itl_p50_n"] == res.n_ok * (NEW_TOKENS - 1)
