"""Export to ONNX / FP16 / TensorRT deployment bundles."""
