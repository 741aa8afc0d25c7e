"""Where frozen encoder weights come from: a local path, the Hugging Face cache, or the hub.

Offline-safe by construction: a hub id is first looked up in the local cache only; the
network is touched only when the cache misses, downloads are allowed (no ``--offline``,
no ``HF_HUB_OFFLINE``) and the hub answers a 1.5 s reachability probe. Otherwise the
load fails at once with one line naming the command-line flag that points at a local
copy and the hub id that was expected (without this, ``transformers`` and ``open_clip``
retry for 20-50 s and print a warning per retry). While loading, the ``huggingface_hub``
/ ``transformers`` / ``open_clip`` loggers and warnings are silenced: the one error line
(or nothing) is what a person sees.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import socket
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

from tr2m_edge.errors import ModelLoadError

log = logging.getLogger(__name__)
T = TypeVar("T")

OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
PROBE_TIMEOUT_S = 1.5
# The flag that points each encoder at a local copy (named in every "missing model" error).
FLAGS = {"depth_anything": "--depth-model", "dinov2": "--image-model", "open_clip": "--text-model",
         "hf_clip": "--text-model"}
# What each transformers-family encoder is called in messages (the preflight and the loaders say the same).
WHAT = {"depth_anything": "Depth Anything model", "dinov2": "DINOv2 image encoder", "hf_clip": "CLIP text encoder"}
OPEN_CLIP_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")  # what open_clip fetches from a hub repo
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_QUIET_LOGGERS = ("huggingface_hub", "transformers", "open_clip", "urllib3", "filelock")


def set_offline(offline: bool = True) -> None:
    """Forbid (or allow again) network access for model loading in this process (``--offline``).

    Sets ``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``, which this module and the hub
    libraries read; an already imported ``huggingface_hub`` is switched too.
    """
    for var in OFFLINE_VARS:
        if offline:
            os.environ[var] = "1"
        else:
            os.environ.pop(var, None)
    try:
        import huggingface_hub.constants as hub_constants

        hub_constants.HF_HUB_OFFLINE = offline
    except (ImportError, AttributeError):  # pragma: no cover - hub library absent or changed
        pass


def is_offline() -> bool:
    """True when ``--offline`` (or ``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``) forbids downloads."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in OFFLINE_VARS)


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


@functools.lru_cache(maxsize=4)
def _probe(host: str, port: int, timeout: float) -> bool:
    result: list[bool] = []

    def connect() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=connect, daemon=True)  # getaddrinfo ignores socket timeouts
    worker.start()
    worker.join(timeout)
    return bool(result and result[0])


def hub_reachable(timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether the hub endpoint accepts a TCP connection within ``timeout`` s (once per process)."""
    url = urlparse(hub_endpoint())
    return _probe(url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80), timeout)


def hf_cache_dir() -> str:
    try:
        from huggingface_hub.constants import HF_HUB_CACHE

        return str(HF_HUB_CACHE)
    except ImportError:  # pragma: no cover
        return "~/.cache/huggingface/hub"


@contextlib.contextmanager
def _no_weight_loading_bars() -> Iterator[None]:
    """transformers' per-load "Loading weights" bar off (hub download bars stay); nothing to
    do (and no import of transformers) before a loader has imported it."""
    if "transformers" not in sys.modules:
        yield
        return
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover
        yield
        return
    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


@contextlib.contextmanager
def quiet_hub() -> Iterator[None]:
    """Silence the hub libraries' loggers, warnings and weight-loading bars for one load."""
    loggers = [logging.getLogger(name) for name in _QUIET_LOGGERS]
    root = logging.getLogger()
    levels = [lg.level for lg in loggers]
    root_level = root.level
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR + 10)
        root.setLevel(logging.ERROR + 10)  # open_clip logs through the root logger
        with warnings.catch_warnings(), _no_weight_loading_bars():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
        root.setLevel(root_level)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:300]}" if text else type(exc).__name__


def load_error(what: str, source: str, exc: BaseException, family: str) -> ModelLoadError:
    """The one-line error of a load that failed for another reason than a missing model."""
    return ModelLoadError(
        f"Could not load the {what} from '{source}': {first_line(exc)}. Point {FLAGS[family]} at a local "
        "directory (save_pretrained) or weight file that holds it, or at a hub id reachable from this machine."
    )


def missing_error(what: str, source: str, family: str, reason: str) -> ModelLoadError:
    flag = FLAGS[family]
    local = (f"{flag} FILE (that repo's open_clip_model.safetensors, or OpenAI's ViT-L-14.pt) or {flag} DIR "
             "(a snapshot of that repo)" if family == "open_clip" else
             f"{flag} DIR (a save_pretrained folder) or {flag} FILE (a weight file)")
    return ModelLoadError(
        f"The {what} '{source}' is not in the local Hugging Face cache ({hf_cache_dir()}) and {reason}. "
        f"Give a local copy with {local}, or fill the cache where there is network "
        f"(huggingface-cli download {source}) and copy it here."
    )


def download_blocker() -> str | None:
    """Why the hub cannot be used now (None when downloads may proceed)."""
    if is_offline():
        return "downloads are off (--offline / HF_HUB_OFFLINE)"
    if not hub_reachable():
        return f"the hub ({hub_endpoint()}) is not reachable from this machine"
    return None


def check_source(what: str, source: str, family: str) -> None:
    """Fail at once when the transformers model ``source`` (a path or hub id) cannot be had here.

    The torch-free preflight of the encoder flags: a missing local path, or a hub id whose
    ``config.json`` is not in the local cache while downloads are off or the hub is
    unreachable, raises the same one-line error the load would raise later, before PyTorch
    and transformers are imported. What the files hold is left to the loaders.

    Raises:
        ModelLoadError: a missing path; a hub id not cached, and offline or unreachable.
    """
    if local_path(source, what, family) is not None:
        return
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers always brings it
        return
    with quiet_hub():
        cached = try_to_load_from_cache(source, "config.json")
    if isinstance(cached, str):
        return
    blocker = download_blocker()
    if blocker is not None:
        raise missing_error(what, source, family, blocker)


def from_hub(what: str, source: str, family: str, loader: Callable[[bool], T]) -> T:
    """Load a hub-hosted model: cache first, then (when allowed and reachable) the network.

    Args:
        what: what is loaded, for messages ("Depth Anything model").
        source: the hub id.
        family: the encoder family (selects the flag named in errors).
        loader: ``loader(local_files_only)`` returns the model; it raises when the files
            are not available.

    Raises:
        ModelLoadError: not cached and offline / unreachable, or the load failed.
    """
    with quiet_hub():
        try:
            return loader(True)
        except Exception as exc:  # noqa: BLE001 - a cache miss; the reason is decided below
            cached_error = exc
    blocker = download_blocker()
    if blocker is not None:
        log.debug("cache miss for %s: %s", source, first_line(cached_error))
        raise missing_error(what, source, family, blocker) from None
    log.info("downloading %s '%s' from %s", what, source, hub_endpoint())
    try:
        with quiet_hub():
            return loader(False)
    except Exception as exc:  # noqa: BLE001 - every loader failure becomes one clear error
        raise load_error(what, source, exc, family) from exc


def local_path(source: str, what: str, family: str) -> Path | None:
    """``source`` as an existing local path; None for a hub id; ModelLoadError for a missing path."""
    path = Path(source).expanduser()
    if path.exists():
        return path
    if _HUB_ID.match(source):
        return None
    raise ModelLoadError(
        f"Could not load the {what} from '{source}': no such file or directory. Pass {FLAGS[family]} an existing "
        "directory (save_pretrained), a weight file, or a hub id such as 'org/name'."
    )
