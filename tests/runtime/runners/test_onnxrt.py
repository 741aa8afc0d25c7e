"""OrtRunner on real ONNX graphs: results, the base class's validation, IOBinding, threads."""

from __future__ import annotations

import numpy as np
import pytest
from rt_graphs import affine_graph, frame_graph

from tr2m_edge.errors import BackendError, InputError
from tr2m_edge.contract import TensorSpec
from tr2m_edge.runtime.runners import OrtRunner
from tr2m_edge.runtime.runners.onnxrt import resolve_providers


@pytest.fixture(scope="module")
def affine(tmp_path_factory):
    return affine_graph(tmp_path_factory.mktemp("g") / "affine.onnx")


def test_infer_computes_the_graph(affine):
    x = np.random.default_rng(0).standard_normal((1, 3, 4, 4)).astype(np.float32)
    with OrtRunner(affine, intra_op_threads=1) as runner:
        out = runner.infer({"x": x})
        assert set(out) == {"y", "z"}
        np.testing.assert_allclose(out["y"], x * 2 + 1, rtol=1e-6)
        np.testing.assert_allclose(out["z"], [x.sum()], rtol=1e-5)
        assert runner.last_inference_ms > 0
        meta = runner.get_input_metadata()
        assert meta == {"x": TensorSpec("x", "float32", (1, 3, 4, 4))}
        assert set(runner.get_output_metadata()) == {"y", "z"}
        assert runner.providers == ["CPUExecutionProvider"]
    assert not runner.is_active


def test_io_binding_gives_the_same_result(affine):
    x = np.random.default_rng(1).standard_normal((1, 3, 4, 4)).astype(np.float32)
    with OrtRunner(affine, io_binding=False) as plain, OrtRunner(affine, io_binding=True) as bound:
        a, b = plain.infer({"x": x}), bound.infer({"x": x})
    for name in ("y", "z"):
        np.testing.assert_array_equal(a[name], b[name])


@pytest.mark.parametrize(
    "feed, match",
    [
        ({}, r"missing input\(s\) 'x'.*It expects: x float32 \(1, 3, 4, 4\)"),
        ({"x": np.zeros((1, 3, 4, 4), np.float32), "w": np.zeros(1)}, r"unexpected input\(s\) 'w'"),
        ({"x": np.zeros((1, 3, 4, 4), np.float64)}, r"input 'x' has dtype float64, expected float32"),
        ({"x": np.zeros((1, 3, 4), np.float32)}, r"shape \(1, 3, 4\) \(3 dims\), expected x float32"),
        ({"x": np.zeros((1, 3, 5, 4), np.float32)}, r"shape \(1, 3, 5, 4\), expected x float32 \(1, 3, 4, 4\)"),
        ({"x": [1, 2, 3]}, r"must be numpy arrays"),
    ],
)
def test_validation_errors_name_the_problem(affine, feed, match):
    with OrtRunner(affine) as runner, pytest.raises(InputError, match=match):
        runner.infer(feed)


def test_dynamic_dims_accept_any_size(tmp_path):
    path = frame_graph(tmp_path / "frame.onnx")
    with OrtRunner(path) as runner:
        assert runner.get_input_metadata()["frame"].shape == ("H", "W", 3)
        for h, w in ((5, 7), (12, 3)):
            frame = np.random.default_rng(h).integers(0, 256, (h, w, 3), dtype=np.uint8)
            image = runner.infer({"frame": frame})["image"]
            np.testing.assert_allclose(image[0], frame.transpose(2, 0, 1) / 255.0, rtol=1e-6)
        with pytest.raises(InputError, match=r"shape \(5, 7, 4\), expected frame uint8 \(\?, \?, 3\)"):
            runner.infer({"frame": np.zeros((5, 7, 4), np.uint8)})


def test_inactive_runner_and_missing_file(affine, tmp_path):
    runner = OrtRunner(affine)
    with pytest.raises(BackendError, match="is not active: call activate"):
        runner.infer({"x": np.zeros((1, 3, 4, 4), np.float32)})
    with pytest.raises(BackendError, match="ONNX file not found"):
        OrtRunner(tmp_path / "nope.onnx").activate()
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    with pytest.raises(BackendError, match="could not load 'bad'"):
        OrtRunner(tmp_path / "bad.onnx").activate()


def test_unavailable_provider_lists_what_exists():
    with pytest.raises(BackendError, match=r"Requested provider was CUDAExecutionProvider, but available providers are \["):
        resolve_providers(["cuda"])
    assert resolve_providers(["cpu"]) == ["CPUExecutionProvider"]


def test_thread_settings_reach_the_session(affine):
    with OrtRunner(affine, intra_op_threads=1, inter_op_threads=1, spinning=False) as runner:
        opts = runner.session.get_session_options()
        assert opts.intra_op_num_threads == 1
        assert opts.inter_op_num_threads == 1
        assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
