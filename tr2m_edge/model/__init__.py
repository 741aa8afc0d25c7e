"""TR2M model code: frozen encoders, the rescale head, the contract's components, the composed model."""

from tr2m_edge.model.components import clip_metric_depth, postprocess_depth
from tr2m_edge.model.head import ScaleMapHead, build_head, count_parameters, metric_from_relative
from tr2m_edge.model.tr2m import TR2M, DepthOutput, build_model

__all__ = [
    "TR2M", "DepthOutput", "ScaleMapHead", "build_head", "build_model", "clip_metric_depth",
    "count_parameters", "metric_from_relative", "postprocess_depth",
]
