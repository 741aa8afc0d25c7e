"""Loading frozen encoders from a local directory, a weight file or a hub id (offline-safe).

``transformers`` encoders (Depth Anything, DINOv2, CLIP text):

* a directory written by ``save_pretrained`` (``config.json`` + weights);
* a weight file (``.safetensors``, ``.bin``, ``.pt``/``.pth`` holding a plain state dict):
  the architecture comes from a ``config.json`` next to it, else from the spec's sizes
  (the same config the random stand-ins use); every tensor must match by name and shape;
* a hub id (``LiheYoung/depth-anything-small-hf``): the local cache first, then the hub
  when downloads are allowed and it is reachable (:func:`tr2m_edge.model.hub.from_hub`).

``open_clip`` text towers: ``source`` is the model name (the architecture, e.g.
``ViT-L-14-quickgelu``; None: built from the spec's sizes) and ``pretrained`` a tag
(``openai``: its file is looked up in the cache, then downloaded when allowed) or a
weight file (an open_clip state dict, or OpenAI's TorchScript ``ViT-L-14.pt`` as the
released code's ``clip.load`` caches it in ``~/.cache/clip``).
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

import torch
from torch import nn

from tr2m_edge.errors import ModelLoadError
from tr2m_edge.model import hub

log = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
OPEN_CLIP_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")  # what open_clip fetches from a hub repo


def is_torchscript(path: Path) -> bool:
    """A TorchScript archive (OpenAI's released CLIP files are): a zip with code/ and constants.pkl."""
    try:
        with zipfile.ZipFile(path) as zf:
            return any(n.endswith("/constants.pkl") for n in zf.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def read_state_dict(path: Path, what: str, family: str) -> dict[str, torch.Tensor]:
    """Tensors of a weight file: safetensors, a safe ``torch.load``, or a TorchScript archive's state."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        elif is_torchscript(path):
            state = torch.jit.load(str(path), map_location="cpu").state_dict()
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unreadable file: one clear error
        raise hub.load_error(what, str(path), exc, family) from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelLoadError(f"{path} does not hold a state dict (name -> tensor) for the {what}.")
    return dict(state)


def load_state_strict(model: nn.Module, state: dict[str, torch.Tensor], what: str, where: str,
                      optional: tuple[str, ...] = ()) -> None:
    """Load every tensor or none: missing, unexpected and mis-shaped names are listed.
    Names in ``optional`` may be absent from ``state`` (they keep their values)."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state) - set(optional))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or shapes:
        parts = [f"{len(v)} {n} ({', '.join(v[:3])}{', ...' if len(v) > 3 else ''})"
                 for n, v in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", shapes)) if v]
        raise ModelLoadError(f"{where} does not fit the {what}: {'; '.join(parts)}.")
    model.load_state_dict(state, strict=not optional)


def load_transformers(cls: type, source: str, what: str, family: str,
                      build_from_sizes: Callable[[], nn.Module] | None) -> nn.Module:
    """A ``transformers`` model from a save_pretrained folder, a weight file or a hub id."""
    path = hub.local_path(source, what, family)
    if path is None:
        return hub.from_hub(what, source, family,
                            lambda local_only: cls.from_pretrained(source, local_files_only=local_only))
    if path.is_dir():
        try:
            with hub.quiet_hub():
                return cls.from_pretrained(str(path), local_files_only=True)
        except Exception as exc:  # noqa: BLE001
            raise hub.load_error(what, source, exc, family) from exc
    config_file = path.parent / "config.json"
    if config_file.is_file():
        model = cls(cls.config_class.from_json_file(str(config_file)))
    elif build_from_sizes is not None:
        model = build_from_sizes()
    else:
        raise ModelLoadError(
            f"The {what} weight file {path} has no config.json beside it and the config gives no sizes to build "
            f"its architecture from. Pass {hub.FLAGS[family]} the save_pretrained folder instead."
        )
    load_state_strict(model, read_state_dict(path, what, family), what, str(path))
    return model


def open_clip_weights(name: str, pretrained: str) -> str:
    """A local file for open_clip ``name`` + ``pretrained`` (a file path, or a tag resolved offline-safe)."""
    import open_clip

    what, family = f"open_clip text encoder {name}:{pretrained}", "open_clip"
    path = Path(pretrained).expanduser()
    if path.is_file():
        return str(path)
    cfg = open_clip.get_pretrained_cfg(name, pretrained)
    if not cfg:
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(name)) or "none"
        raise ModelLoadError(
            f"'{pretrained}' is neither a weight file nor a pretrained tag of open_clip '{name}' (tags: {tags}). "
            "Pass --text-model NAME:TAG or NAME:FILE."
        )
    repo = str(cfg.get("hf_hub") or "").strip("/")
    url = str(cfg.get("url") or "")
    if repo:
        from huggingface_hub import try_to_load_from_cache

        for filename in OPEN_CLIP_FILES:
            cached = try_to_load_from_cache(repo, filename)
            if isinstance(cached, str):
                return cached
    legacy = Path("~/.cache/clip").expanduser() / Path(urlparse(url).path).name if url else None
    if legacy is not None and legacy.is_file():  # open_clip's URL cache, also the released code's clip.load cache
        return str(legacy)
    blocker = hub.download_blocker()
    if blocker is not None:
        raise hub.missing_error(what, repo or url, family, blocker)
    try:
        with hub.quiet_hub():
            return str(open_clip.download_pretrained(cfg))
    except Exception as exc:  # noqa: BLE001
        raise hub.load_error(what, repo or url, exc, family) from exc


def open_clip_architecture(name: str) -> nn.Module:
    """open_clip model ``name`` with random weights, on the current default device (meta works:
    ``create_model`` would move it to a device). Its MLP activation is the config's:
    QuickGELU for ``*-quickgelu`` names, ``nn.GELU`` for plain ``ViT-L-14``."""
    import open_clip

    cfg = open_clip.get_model_config(name)
    if cfg is None:
        raise ModelLoadError(
            f"open_clip has no model '{name}'. The released TR2M uses ViT-L-14-quickgelu (OpenAI CLIP ViT-L/14)."
        )
    if cfg.get("custom_text") or "hf_model_name" in cfg.get("text_cfg", {}):
        with hub.quiet_hub():
            return open_clip.create_model(name, pretrained=None)
    return open_clip.CLIP(**cfg)


def load_open_clip(name: str | None, pretrained: str | None, build_from_sizes: Callable[[], nn.Module]) -> nn.Module:
    """An open_clip CLIP text tower: architecture from ``name`` (or the spec's sizes), weights from
    ``pretrained``. The image tower is dropped (``visual`` becomes an Identity); weight files
    may hold the whole CLIP or only the text tower."""
    what = f"open_clip text encoder {name or '(from sizes)'}"
    path = None
    if pretrained is not None:  # resolved first: a missing file fails before a large model is built
        path = Path(open_clip_weights(name, pretrained)) if name is not None else Path(pretrained).expanduser()
        if not path.is_file():
            raise ModelLoadError(f"The open_clip weight file '{pretrained}' does not exist. Pass --text-model NAME:FILE.")
    model = build_from_sizes() if name is None else open_clip_architecture(name)
    model.visual = nn.Identity()  # only the text tower is used
    if path is not None:
        state = read_state_dict(path, what, "open_clip")
        state = {k: v for k, v in state.items() if not k.startswith("visual.")  # TorchScript archives' extras:
                 and k not in ("input_resolution", "context_length", "vocab_size", "attn_mask")}
        if "logit_scale" in state and state["logit_scale"].ndim != model.logit_scale.ndim:
            state["logit_scale"] = state["logit_scale"].reshape(model.logit_scale.shape)
        load_state_strict(model, state, what, str(path), optional=("logit_scale", "logit_bias"))
    return model
