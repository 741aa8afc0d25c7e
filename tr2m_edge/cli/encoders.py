"""The encoder-source options shared by ``import-official``, ``export``, ``train`` and ``eval``.

Declared once here; each command takes them as ``depth_model: Optional[str] = DEPTH_MODEL``
and turns them into :class:`~tr2m_edge.model.encoder_sources.EncoderSources` with
:func:`encoder_sources` (which also applies ``--offline``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from tr2m_edge.model.encoder_sources import EncoderSources

def _model_option(flag: str, what: str, default: str) -> typer.models.OptionInfo:
    return typer.Option(None, flag, help=f"{what}: a save_pretrained folder, a weight file, or a hub id (default: "
                                         f"the config's, e.g. {default}). Written into the output's config.")


DEPTH_MODEL = _model_option("--depth-model", "Depth Anything weights", "LiheYoung/depth-anything-small-hf")
IMAGE_MODEL = _model_option("--image-model", "DINOv2 image encoder", "facebook/dinov2-large")
TEXT_MODEL = typer.Option(
    None, "--text-model",
    help="CLIP text tower: open_clip NAME[:TAG|:FILE] (default ViT-L-14-quickgelu:openai), an open_clip weight "
         "file or folder, a CLIPTextModelWithProjection save_pretrained folder, or a hub id.",
)
OFFLINE = typer.Option(
    False, "--offline",
    help="Never use the network: encoders come from local paths or the Hugging Face cache (sets HF_HUB_OFFLINE); "
         "a missing one fails at once, naming the flag to use.",
)


def encoder_sources(depth: str | None, image: str | None, text: str | None, offline: bool = False) -> "EncoderSources":
    """The parsed options (``--offline`` takes effect for the rest of the process).

    Paths and hub ids among them are checked at once (torch-free): a missing path, or a hub
    id neither cached nor downloadable, fails here, not after the model libraries load.
    """
    from tr2m_edge.model.encoder_sources import EncoderSources
    from tr2m_edge.model.hub import WHAT, check_source, set_offline

    if offline:
        set_offline(True)
    for value, family in ((depth, "depth_anything"), (image, "dinov2"),
                          (text if text and ":" not in text else None, "hf_clip")):
        if value:
            check_source(WHAT[family], value, family)
    return EncoderSources(depth=depth, image=image, text=text)
