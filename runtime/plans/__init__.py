"""Execution plans: how the executor's pipelined modes use the machine.

    ``serial``   every stage in turn in the caller's thread (:mod:`.serial`);
    ``threads``  one host thread per stage, for CPU runners (:mod:`.threads`);
    ``device``   one thread issuing each frame's work, for GPU runners (:mod:`.device`),
                 over the frame plan the runners declare (:mod:`.frame`, :mod:`.torch_frame`).

:func:`choose_plan` picks one from the mode and the runners' device.
"""

from __future__ import annotations

from typing import Callable, Iterator

from tr2m_edge.errors import ConfigError
import tr2m_edge.runtime.plans.device as device
import tr2m_edge.runtime.plans.serial as serial
import tr2m_edge.runtime.plans.threads as threads
from tr2m_edge.runtime.plans.base import Mode, PlanRun
from tr2m_edge.runtime.results import MetricDepth
from tr2m_edge.runtime.sources import FrameSource
from tr2m_edge.runtime.stages import FrameStages

PlanFn = Callable[[PlanRun, FrameSource], Iterator[MetricDepth]]
PLANS: dict[str, PlanFn] = {"serial": serial.run, "threads": threads.run, "device": device.run}
PLAN_CHOICES = ("auto", "serial", "threads", "device")
PLAN_HELP = ("auto | serial | threads | device: how pipelined modes use the machine (auto: device for GPU "
             "runners, threads for CPU runners; serial: every stage in turn in one thread).")


def check_plan(plan: str) -> str:
    """``plan`` when it names a plan (or ``auto``).

    Raises:
        ConfigError: an unknown plan name.
    """
    if plan not in PLAN_CHOICES:
        raise ConfigError(f"Unknown executor plan '{plan}'. Available: {', '.join(PLAN_CHOICES)}.")
    return plan


def choose_plan(mode: "str | Mode", stages: FrameStages, plan: str = "auto") -> tuple[str, str]:
    """(plan, reason): ``serial`` for serial mode; else ``plan`` when one is asked for, ``device``
    for GPU runners, ``threads`` for CPU runners. ``serial`` in a pipelined mode runs every
    stage in turn in the caller's thread: one frame in flight, the next one read only when
    it is done (the executor drops nothing; a live source's own buffer decides what is seen).

    Raises:
        ConfigError: an unknown plan name.
    """
    check_plan(plan)
    if Mode.parse(mode) is Mode.SERIAL:
        return "serial", "serial mode: every stage in turn in the caller's thread"
    if plan == "serial":
        return "serial", "requested: every stage in turn in the caller's thread"
    if plan != "auto":
        return plan, "requested"
    if stages.device_kind == "cuda":
        return "device", "runners on a GPU: one thread issues each frame's GPU work, double-buffered"
    return "threads", "runners on the CPU: one thread per stage"
