"""TensorRT: device-compatibility refusal (runs anywhere) and engine builds (GPU + TensorRT only)."""

from __future__ import annotations

import importlib.util

import pytest

from tr2m_edge.bundle import ComponentFile, Manifest, check_engine_compat
from tr2m_edge.config import get_preset
from tr2m_edge.errors import BundleError
from tr2m_edge.runtime.engines import engine_profile
from tr2m_edge.system import EngineTarget, engine_target

BUILT = {"version": "10.3.0", "gpu": "Orin (nvgpu)", "compute_capability": "8.7", "precision": "fp16"}


def manifest(with_engine=True, tensorrt=BUILT):
    files = [ComponentFile("depth", "depth.onnx", "0" * 64, "fp32")]
    if with_engine:
        files.append(ComponentFile("depth", "depth.fp16.engine", "1" * 64, "fp16", format="engine"))
    return Manifest(model=get_preset("tiny"), files=files, tensorrt=tensorrt if with_engine else None)


def test_same_device_is_accepted():
    check_engine_compat(manifest(), EngineTarget("Orin (nvgpu)", "8.7", "10.3.0.26"))
    check_engine_compat(manifest(with_engine=False), None)  # no engines: nothing to check


@pytest.mark.parametrize("device", [EngineTarget("NVIDIA GeForce RTX 4090", "8.9", "10.3.0"),
                                    EngineTarget("Orin (nvgpu)", "8.7", "10.7.0")])
def test_other_gpu_or_tensorrt_is_refused_with_rebuild_advice(device):
    with pytest.raises(BundleError) as info:
        check_engine_compat(manifest(), device)
    msg = str(info.value)
    assert "built for Orin (nvgpu) (sm 8.7) / TRT 10.3.0" in msg
    assert f"this device is {device.gpu} (sm {device.compute_capability}) / TRT {device.tensorrt}" in msg
    assert "rebuild with `tr2m-edge build BUNDLE` on this device (the ONNX files stay usable)" in msg


def test_no_gpu_is_refused():
    with pytest.raises(BundleError, match="this device has no TensorRT/CUDA GPU: run the ONNX files instead"):
        check_engine_compat(manifest(), None)


def test_engine_profile_covers_half_to_twice_the_input_size():
    shapes = {"image": ("batch", 3, "height", "width"), "fixed": (1, 3)}
    prof = engine_profile(shapes, (434, 560))
    assert prof == {"image": ((1, 3, 210, 280), (1, 3, 434, 560), (4, 3, 868, 1120))}
    tokens = engine_profile({"image_tokens": ("batch", "tokens", 1024)}, (434, 560))["image_tokens"]
    assert tokens[1] == (1, 31 * 40, 1024)


def test_engine_target_is_none_without_tensorrt():
    if importlib.util.find_spec("tensorrt") is None:
        assert engine_target() is None


@pytest.mark.gpu
@pytest.mark.tensorrt
def test_engines_build_and_pass_parity(tmp_path, export_model):
    pytest.importorskip("tensorrt", reason="TensorRT is not installed (it needs an NVIDIA GPU machine)")
    device = engine_target()
    if device is None:
        pytest.skip("no CUDA GPU visible")
    from tr2m_edge.bundle import open_bundle
    from tr2m_edge.export import export_bundle

    path = export_bundle(export_model, tmp_path / "trt", fp16=True, trt=True, frame_size=(150, 200), progress=False)
    bundle = open_bundle(path)
    assert bundle.manifest.tensorrt["gpu"] == device.gpu
    assert bundle.require("depth", "fp16", "engine")
    assert bundle.manifest.parity["tensorrt"]["passed"]
    check_engine_compat(bundle.manifest, device)
