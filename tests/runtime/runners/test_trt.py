"""TensorRT runner: engine compatibility checks (pure logic) and, with TensorRT, a real engine."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from rt_graphs import affine_graph

from tr2m_edge.bundle import EngineTarget, check_engine_target
from tr2m_edge.errors import BackendError, BundleError
from tr2m_edge.runtime.runners import TrtRunner
from tr2m_edge.runtime.runners.cuda import has_cuda_device

HAS_TRT = importlib.util.find_spec("tensorrt") is not None


HERE = EngineTarget("Orin", "8.7", "10.3.0.30")


def test_compatible_engine_passes():
    check_engine_target({"version": "10.3.0", "compute_capability": "8.7", "gpu": "Orin"}, HERE)
    check_engine_target({"version": "10.3.0", "compute_capability": [8, 7], "version_compatible": True},
                        EngineTarget("Orin", "8.7", "10.8.0"))
    check_engine_target({"version": "10.3.0", "compute_capability": "8.0", "hardware_compatible": True}, HERE)


@pytest.mark.parametrize(
    "info, here, match",
    [
        (None, HERE, "has no TensorRT engines"),
        ({"version": "10.3.0", "compute_capability": "8.7", "gpu": "Orin"}, EngineTarget("Orin", "8.7", "10.8.0"),
         r"built for Orin \(sm 8.7\) / TRT 10.3.0, this device is Orin \(sm 8.7\) / TRT 10.8.0: rebuild"),
        ({"version": "10.3.0", "compute_capability": "8.7", "gpu": "Orin"}, EngineTarget("RTX 4090", "8.9", "10.3.0"),
         r"this device is RTX 4090 \(sm 8.9\) / TRT 10.3.0"),
        ({"version": "10.3.0", "compute_capability": "8.7"}, None, "this device has no TensorRT/CUDA GPU"),
    ],
)
def test_foreign_engines_are_refused(info, here, match):
    with pytest.raises(BundleError, match=match):
        check_engine_target(info, here)


@pytest.mark.skipif(HAS_TRT, reason="checks the message when TensorRT is absent")
def test_activate_without_tensorrt_says_how_to_get_it(tmp_path):
    (tmp_path / "x.engine").write_bytes(b"\0")
    with pytest.raises(BackendError, match=r"TensorRT is not installed .*pip install 'tr2m-edge\[gpu\]'"):
        TrtRunner(tmp_path / "x.engine").activate()


@pytest.mark.tensorrt
@pytest.mark.gpu
@pytest.mark.skipif(not (HAS_TRT and has_cuda_device()), reason="needs TensorRT and a CUDA GPU")
def test_engine_matches_onnx_runtime(tmp_path):
    import tensorrt as trt

    onnx_path = affine_graph(tmp_path / "affine.onnx")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(onnx_path.read_bytes())
    engine = builder.build_serialized_network(network, builder.create_builder_config())
    (tmp_path / "affine.engine").write_bytes(bytes(engine))
    x = np.random.default_rng(0).standard_normal((1, 3, 4, 4)).astype(np.float32)
    with TrtRunner(tmp_path / "affine.engine") as runner:
        out = runner.infer({"x": x})
        assert runner.get_input_metadata()["x"].shape == (1, 3, 4, 4)
    np.testing.assert_allclose(out["y"], x * 2 + 1, rtol=1e-5)
