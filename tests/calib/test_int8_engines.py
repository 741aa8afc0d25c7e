"""INT8 TensorRT engines: the build path's flags per TensorRT major version (a recording stand-in for
the ``tensorrt`` module: the machines here cannot install TensorRT), the refusal without TensorRT,
and the real build on a GPU with TensorRT (skipped elsewhere)."""

from __future__ import annotations

import importlib.util
import shutil
import sys
import types

import pytest

from tr2m_edge.errors import ConfigError
from tr2m_edge.runtime.engines import build_engine


class _Recorder:
    """The few TensorRT 10/11 builder objects build_engine touches, recording what it asks for."""

    def __init__(self, version: str) -> None:
        self.calls: list[tuple] = []
        self.module = types.SimpleNamespace(__version__=version)
        m, calls = self.module, self.calls

        class Flags:
            INT8, FP16, TF32 = "INT8", "FP16", "TF32"

        class Config:
            def set_memory_pool_limit(self, pool, size):
                calls.append(("pool", pool))

            def set_flag(self, flag):
                calls.append(("set_flag", flag))

            def clear_flag(self, flag):
                calls.append(("clear_flag", flag))

        class Builder:
            def __init__(self, logger):
                pass

            def create_network(self, flags):
                calls.append(("network_flags", flags))
                return object()

            def create_builder_config(self):
                return Config()

            def build_serialized_network(self, network, config):
                return b"engine"

        class Parser:
            def __init__(self, network, logger):
                pass

            def parse_from_file(self, path):
                calls.append(("parse", path))
                return True

        m.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None})
        m.Builder, m.OnnxParser, m.BuilderFlag = Builder, Parser, Flags
        m.MemoryPoolType = types.SimpleNamespace(WORKSPACE="workspace")
        m.NetworkDefinitionCreationFlag = types.SimpleNamespace(STRONGLY_TYPED=5)


@pytest.mark.parametrize("version, flags, network_flags, precision_flag", [
    ("10.3.0", [("set_flag", "INT8"), ("set_flag", "FP16")], 0, "BuilderFlag.INT8 + BuilderFlag.FP16"),
    ("11.0.0", [], 1 << 5, None),
])
def test_int8_engines_parse_the_qdq_graph_with_the_right_flags(tmp_path, monkeypatch, version, flags,
                                                               network_flags, precision_flag):
    rec = _Recorder(version)
    monkeypatch.setitem(sys.modules, "tensorrt", rec.module)
    fp32, qdq, engine = tmp_path / "depth.onnx", tmp_path / "depth.int8.symmetric.onnx", tmp_path / "depth.int8.engine"
    facts = build_engine(fp32, engine, fp16=True, int8_onnx_path=qdq)
    assert ("parse", str(qdq)) in rec.calls and ("parse", str(fp32)) not in rec.calls
    assert [c for c in rec.calls if c[0] in ("set_flag", "clear_flag")] == flags
    assert ("network_flags", network_flags) in rec.calls
    assert facts == {"source": qdq.name, "strongly_typed": version.startswith("11"), "precision_flag": precision_flag}
    assert engine.read_bytes() == b"engine"


def test_fp16_and_fp32_engine_flags_are_unchanged(tmp_path, monkeypatch):
    rec = _Recorder("10.3.0")
    monkeypatch.setitem(sys.modules, "tensorrt", rec.module)
    assert build_engine(tmp_path / "a.onnx", tmp_path / "a.engine", fp16=True)["precision_flag"] == "BuilderFlag.FP16"
    assert build_engine(tmp_path / "a.onnx", tmp_path / "b.engine", fp16=False)["precision_flag"] is None
    assert [c for c in rec.calls if c[0] in ("set_flag", "clear_flag")] == [("set_flag", "FP16"), ("clear_flag", "TF32")]


def test_calib_trt_without_tensorrt_is_a_one_line_error(fp16_bundle, tmp_path):
    from tr2m_edge.calib.calibrate import calibrate_bundle
    from tr2m_edge.system import engine_target

    if engine_target() is not None:
        pytest.skip("this machine has TensorRT and a GPU")
    with pytest.raises(ConfigError, match="--trt needs TensorRT and a CUDA GPU on this machine; neither was found"):
        calibrate_bundle(fp16_bundle, synthetic=True, trt=True, progress=False)


@pytest.mark.gpu
@pytest.mark.tensorrt
@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is None,
                    reason="TensorRT is not installed (it needs an NVIDIA GPU machine)")
def test_int8_engines_build_and_pass_the_gate(tmp_path, fp16_bundle):
    from tr2m_edge.bundle import open_bundle
    from tr2m_edge.calib.calibrate import calibrate_bundle
    from tr2m_edge.system import engine_target

    if engine_target() is None:
        pytest.skip("no CUDA GPU visible")
    path = tmp_path / "trt"
    shutil.copytree(fp16_bundle, path)
    result = calibrate_bundle(path, synthetic=True, num=8, holdout=4, trt=True, progress=False)
    manifest = open_bundle(path).manifest
    section = manifest.tensorrt["int8"]
    assert result.usable and section["installed"]
    assert manifest.find("depth", "int8", "engine") is not None
    assert "head" in section["skipped"]  # fp16_bundle has a dynamic frame size
