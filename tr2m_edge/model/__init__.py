"""TR2M model code: frozen encoders, the rescale head, and the composed model."""

from tr2m_edge.model.head import ScaleMapHead, count_parameters, metric_from_relative
from tr2m_edge.model.tr2m import TR2M, DepthOutput, build_head, build_model, postprocess_depth

__all__ = [
    "TR2M", "DepthOutput", "ScaleMapHead", "build_head", "build_model",
    "count_parameters", "metric_from_relative", "postprocess_depth",
]
