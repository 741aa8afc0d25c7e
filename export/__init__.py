"""Export to ONNX / FP16 / TensorRT deployment bundles (needs PyTorch; running a bundle does not).

Modules, one concern each:

* :mod:`.sources` - what an export starts from (checkpoint, model, random head);
* :mod:`.graphs` - the bundle's graph set: the model's contract components + example inputs;
* :mod:`.dynamic` - patches that make dynamic-size exports correct;
* :mod:`.onnx_export` - ``torch.onnx.export`` with the TorchScript or dynamo exporter;
* :mod:`.fp16` - FP16 variants with the fragile ops kept in fp32;
* :mod:`.parity` - the PyTorch reference and the runtime's runners over the written files;
* :mod:`.tensorrt` - TensorRT 10/11 engines;
* :mod:`.bundle_writer` - ``export_bundle`` tying it together;
* :mod:`.compare` - measures which exporter gives faster ONNX Runtime graphs.
"""

from tr2m_edge.export.bundle_writer import export_bundle
from tr2m_edge.export.sources import export_source, load_source

__all__ = ["export_bundle", "export_source", "load_source"]
