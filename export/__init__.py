"""Export to ONNX / FP16 / TensorRT deployment bundles (needs PyTorch; running a bundle does not).

Modules, one concern each:

* :mod:`.graphs` - nn.Module wrappers giving each component its named inputs/outputs;
* :mod:`.dynamic` - patches that make dynamic-size exports correct;
* :mod:`.onnx_export` - ``torch.onnx.export`` with the TorchScript or dynamo exporter;
* :mod:`.fp16` - FP16 variants with the fragile ops kept in fp32;
* :mod:`.parity` - the comparator (export checks, tests, bench);
* :mod:`.tensorrt` - TensorRT 10/11 engines, device compatibility check;
* :mod:`.bundle_writer` - ``export_bundle`` tying it together;
* :mod:`.compare` - measures which exporter gives faster ONNX Runtime graphs.
"""

from tr2m_edge.export.bundle_writer import export_bundle, random_head_checkpoint
from tr2m_edge.model.summary import random_encoder_config
from tr2m_edge.export.parity import ParityReport, check_parity, ort_runner, torch_reference
from tr2m_edge.export.tensorrt import DeviceInfo, check_engine_compat

__all__ = [
    "DeviceInfo", "ParityReport", "check_engine_compat", "check_parity", "export_bundle", "ort_runner",
    "random_encoder_config", "random_head_checkpoint", "torch_reference",
]
