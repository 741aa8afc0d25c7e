"""Where results go: a window, a video file, depth files, console statistics."""

from tr2m_edge.runtime.sinks.base import Sink
from tr2m_edge.runtime.sinks.display import DisplaySink, display_problem
from tr2m_edge.runtime.sinks.files import DepthFileSink, depth_to_png16
from tr2m_edge.runtime.sinks.render import DepthColouriser, render_panel
from tr2m_edge.runtime.sinks.stats import StatsSink
from tr2m_edge.runtime.sinks.video import VideoSink

__all__ = [
    "DepthColouriser", "DepthFileSink", "DisplaySink", "Sink", "StatsSink", "VideoSink",
    "depth_to_png16", "display_problem", "render_panel",
]
