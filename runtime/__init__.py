"""Pipelined inference on TensorRT, ONNX Runtime or PyTorch. Imports no PyTorch unless asked."""
