"""The deployment bundle format: a self-describing folder that ``run`` and ``bench`` read.

``export`` writes it; the runtime reads it without PyTorch. Layout::

    bundle/
      manifest.json        this module's Manifest, as JSON
      preprocess.onnx      uint8 HxWx3 frame -> normalised 1x3xhxw
      depth.onnx           image -> D_r (edge: also the backbone tokens)
      image_encoder.onnx   image -> F_I (absent for edge)
      head.onnx            F_I, D_r, scene_bias -> metric depth at frame size (+ A, B)
      text_encoder.onnx    token ids -> text embedding
      scene_bias.onnx      text embedding -> per-scene bias
      *.fp16.onnx, *.int8.onnx, *.engine   optional variants (engines: ``tr2m-edge build`` on the target)
      tokenizer/           the CLIP BPE vocabulary
      check.npz            the export's parity inputs (frame, caption ids): ``build`` checks engines on them
      scenes/              per-caption bias cache (``export --scene``, ``scenes add``)

Every file is listed in the manifest with its sha256; :func:`open_bundle` verifies them
all and refuses a tampered, missing or foreign file by name.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from tr2m_edge.config import ModelConfig, check_frame_size
from tr2m_edge.contract import TensorSpec
from tr2m_edge.errors import BundleError, ConfigError
from tr2m_edge.fileio import check_header, write_json_atomic
from tr2m_edge.schema import build
from tr2m_edge.system import EngineTarget

log = logging.getLogger(__name__)
BUNDLE_FORMAT = "tr2m-edge/bundle"
BUNDLE_VERSION = 2  # 2: the manifest carries its own digest
MANIFEST = "manifest.json"
COMPONENTS = ("preprocess", "depth", "image_encoder", "head", "text_encoder", "scene_bias")
PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class ComponentFile:
    """One file of one component: an ONNX graph or a TensorRT engine at one precision."""

    component: str  # one of COMPONENTS
    file: str  # path relative to the bundle folder
    sha256: str
    precision: str  # fp32 | fp16 | int8
    format: str = "onnx"  # onnx | engine
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()

    def __post_init__(self) -> None:
        parts = PurePosixPath(self.file).parts
        if not parts or self.file.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
            raise BundleError(f"The manifest names the file '{self.file}', which is not a path inside the bundle; "
                              "refusing to read it. Re-export the bundle.")


@dataclass
class Manifest:
    """Everything a runtime needs to know about a bundle."""

    model: ModelConfig
    files: list[ComponentFile]
    frame_size: tuple[int, int] | None = None  # fixed camera frame size, or None when dynamic
    dynamic: bool = False  # graphs accept any multiple-of-14 input size
    exporter: dict[str, Any] = field(default_factory=dict)  # name, opset, why chosen
    tokenizer: dict[str, Any] = field(default_factory=dict)  # name, vocab file, context length
    hashes: dict[str, str] = field(default_factory=dict)  # text_encoder / head content hashes
    tensorrt: dict[str, Any] | None = None  # version, gpu, compute capability of the engines
    tools: dict[str, str | None] = field(default_factory=dict)
    parity: dict[str, Any] = field(default_factory=dict)
    format: str = BUNDLE_FORMAT
    format_version: int = BUNDLE_VERSION
    digest: str = ""  # sha256 of the manifest's canonical form without this field (manifest_digest)

    def __post_init__(self) -> None:
        if self.frame_size is not None:
            try:
                self.frame_size = check_frame_size(self.frame_size)
            except ConfigError as exc:
                raise BundleError(f"The manifest's frame_size is invalid: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        return json.loads(json.dumps(d))

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "manifest.json") -> "Manifest":
        """Read a manifest: format checked, every field type-checked, the digest verified (format >= 2)."""
        version = check_header(d, BUNDLE_FORMAT, BUNDLE_VERSION, BundleError, where, "tr2m-edge bundle manifest",
                               upgrade="Upgrade tr2m-edge or re-export the bundle.")
        if version >= 2:
            want = manifest_digest(d)
            if d.get("digest") != want:
                raise BundleError(f"{where} does not match its own digest: it was edited or corrupted after export. "
                                  "Re-export the bundle (or restore the manifest).")
        elif "digest" not in d:
            log.warning("%s (bundle format %d) carries no digest of its own: re-export it to protect it.", where, version)
        try:
            return build(cls, d, where, BundleError, labels={cls: "manifest", ComponentFile: "file entry"})
        except BundleError as exc:
            raise BundleError(f"{exc} Re-export the bundle.") from None

    def find(self, component: str, precision: str = "fp32", fmt: str = "onnx") -> ComponentFile | None:
        for f in self.files:
            if f.component == component and f.precision == precision and f.format == fmt:
                return f
        return None

    def components(self) -> list[str]:
        return sorted({f.component for f in self.files})


def manifest_digest(data: dict[str, Any]) -> str:
    """sha256 of a manifest's canonical JSON (sorted keys, no spaces), its ``digest`` field left out."""
    body = {k: v for k, v in data.items() if k != "digest"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def write_manifest(root: str | Path, manifest: Manifest) -> Path:
    """Write ``root/manifest.json`` atomically with its digest: the one place a manifest is written."""
    manifest.format_version = BUNDLE_VERSION
    data = manifest.to_dict()
    data["digest"] = manifest.digest = manifest_digest(data)
    path = Path(root) / MANIFEST
    write_json_atomic(path, data)
    return path


def component_file(root: Path, rel: str, component: str, precision: str, fmt: str = "onnx",
                   io_from: Path | None = None) -> ComponentFile:
    """The manifest entry of ``root / rel``: its sha256, and the inputs/outputs of the ONNX
    graph it is (or, for an engine, of the ONNX graph ``io_from`` it was built from)."""
    import numpy as np
    import onnx

    def specs(values: Any) -> tuple[TensorSpec, ...]:
        out = []
        for v in values:
            t = v.type.tensor_type
            shape = tuple(d.dim_param if d.dim_param else int(d.dim_value) for d in t.shape.dim)
            dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)).name
            out.append(TensorSpec(name=v.name, dtype=dtype, shape=shape))
        return tuple(out)

    graph = onnx.load(str(io_from or root / rel), load_external_data=False).graph
    return ComponentFile(component=component, file=rel, sha256=sha256_file(root / rel), precision=precision,
                         format=fmt, inputs=specs(graph.input), outputs=specs(graph.output))


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class Bundle:
    """An opened, verified bundle folder."""

    root: Path
    manifest: Manifest

    @property
    def config(self) -> ModelConfig:
        return self.manifest.model

    def path(self, entry: ComponentFile) -> Path:
        return self.root / entry.file

    def require(self, component: str, precision: str = "fp32", fmt: str = "onnx") -> ComponentFile:
        entry = self.manifest.find(component, precision, fmt)
        if entry is None:
            have = ", ".join(sorted(f"{f.component}/{f.precision}/{f.format}" for f in self.manifest.files))
            how = ("Calibrate INT8 graphs into it with `tr2m-edge calib BUNDLE --images DIR`" if precision == "int8"
                   else "Build TensorRT engines on the target with `tr2m-edge build BUNDLE`" if fmt == "engine"
                   else "Re-export with the option that produces it (e.g. --fp16)")
            raise BundleError(f"Bundle {self.root} has no {precision} {fmt} file for '{component}'. It has: {have}. {how}.")
        return entry


def open_bundle(path: str | Path, verify: bool = True) -> Bundle:
    """Read ``manifest.json`` and (by default) check every listed file's sha256."""
    root = Path(path)
    manifest_path = root / MANIFEST
    if not root.is_dir():
        raise BundleError(f"Bundle folder not found: {root}. Create one with `tr2m-edge export`.")
    if not manifest_path.is_file():
        raise BundleError(f"{root} has no {MANIFEST}: not a tr2m-edge bundle. Create one with `tr2m-edge export`.")
    try:
        data = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{manifest_path} is corrupt ({exc}). Re-export the bundle.") from None
    manifest = Manifest.from_dict(data, str(manifest_path))
    bundle = Bundle(root=root, manifest=manifest)
    if verify:
        verify_bundle(bundle)
    return bundle


def verify_bundle(bundle: Bundle) -> None:
    """Raise BundleError naming the first missing or modified file."""
    for entry in bundle.manifest.files:
        verify_file(bundle, entry)


def verify_file(bundle: Bundle, entry: ComponentFile) -> Path:
    """The path of one listed file after checking that it exists and matches its sha256."""
    p = bundle.path(entry)
    if not p.is_file():
        raise BundleError(f"Bundle file missing: {p} (listed in {MANIFEST}). Re-export the bundle.")
    if sha256_file(p) != entry.sha256:
        raise BundleError(
            f"Bundle file {p} does not match its sha256 in {MANIFEST}: it was modified or corrupted. "
            "Re-export the bundle (or restore the file)."
        )
    return p


# --------------------------------------------------------------- parity inputs

CHECK_FILE = "check.npz"  # what export checked parity on, so `build` can check engines on it without PyTorch
CHECK_CAPTION = "a photo of a warehouse aisle"


def write_check_inputs(root: Path, frame: Any, token_ids: Any, caption: str) -> ComponentFile:
    """Write ``root/check.npz`` (the parity frame, (H, W, 3) uint8; its caption's (1, 77) int64
    token ids; the caption) and return its manifest entry."""
    import io

    import numpy as np

    from tr2m_edge.fileio import write_bytes_atomic

    buf = io.BytesIO()
    np.savez(buf, frame=np.asarray(frame, dtype=np.uint8), token_ids=np.asarray(token_ids, dtype=np.int64),
             caption=np.array(caption))
    write_bytes_atomic(Path(root) / CHECK_FILE, buf.getvalue())
    return ComponentFile(component="check", file=CHECK_FILE, sha256=sha256_file(Path(root) / CHECK_FILE),
                         precision="none", format="npz")


def read_check_inputs(bundle: Bundle) -> tuple[Any, Any, str] | None:
    """The bundle's parity inputs (frame, token ids, caption), hash-checked; None when it has none
    (exported before tr2m-edge wrote them)."""
    import numpy as np

    entry = bundle.manifest.find("check", "none", "npz")
    if entry is None:
        return None
    path = verify_file(bundle, entry)
    try:
        with np.load(path, allow_pickle=False) as data:
            frame, ids, caption = data["frame"], data["token_ids"], str(data["caption"])
    except (OSError, KeyError, ValueError) as exc:
        raise BundleError(f"{path} is not a parity-input file ({exc}). Re-export the bundle.") from None
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3 or ids.dtype != np.int64 or ids.ndim != 2:
        raise BundleError(f"{path} holds a {frame.dtype} {frame.shape} frame and {ids.dtype} {ids.shape} token ids; "
                          "expected (H, W, 3) uint8 and (1, 77) int64. Re-export the bundle.")
    return frame, ids, caption


# --------------------------------------------------------------- TensorRT engines

REBUILD_ENGINES = "rebuild with `tr2m-edge build BUNDLE` on this device (the ONNX files stay usable)"


def _cc_text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return f"{int(value[0])}.{int(value[1])}"
    return str(value)


def check_engine_target(info: dict[str, Any] | None, here: EngineTarget | None) -> None:
    """Refuse engines that cannot run here, before the first frame.

    Args:
        info: the manifest's ``tensorrt`` entry (``gpu``, ``compute_capability`` "8.7" or
            [8, 7], ``version``, optional ``version_compatible`` / ``hardware_compatible``).
        here: this machine's GPU and TensorRT, or None when it has neither.

    Engines deserialise only with the TensorRT version that built them and run only on
    GPUs of the same compute capability, unless built version- or hardware-compatible.
    """
    if not info:
        raise BundleError("The bundle has no TensorRT engines (no 'tensorrt' entry in its manifest). Build them "
                          "on this machine with `tr2m-edge build BUNDLE`, or use an ONNX Runtime backend.")
    built = EngineTarget(str(info.get("gpu", "?")), _cc_text(info.get("compute_capability", "?")),
                         str(info.get("version", "?")))
    if here is None:
        raise BundleError(f"The bundle's TensorRT engines were built for {built.describe()}, this device has no "
                          f"TensorRT/CUDA GPU: run the ONNX files instead (--backend ort-cpu) or {REBUILD_ENGINES}.")
    same_version = built.tensorrt.split(".")[:3] == here.tensorrt.split(".")[:3]
    same_sm = built.compute_capability == here.compute_capability
    if not (same_version or info.get("version_compatible")) or not (same_sm or info.get("hardware_compatible")):
        raise BundleError(f"The bundle's TensorRT engines were built for {built.describe()}, "
                          f"this device is {here.describe()}: {REBUILD_ENGINES}.")
    if built.gpu != here.gpu:
        log.warning("TensorRT engines were built on %s, running on %s (same sm %s): rebuild for best speed.",
                    built.gpu, here.gpu, here.compute_capability)


def check_engine_compat(manifest: Manifest, here: EngineTarget | None) -> None:
    """:func:`check_engine_target` for a bundle; nothing to check when it holds no engines.

    Args:
        manifest: the bundle's manifest.
        here: the GPU and TensorRT to run on (:func:`tr2m_edge.system.engine_target`), None without.
    """
    if any(f.format == "engine" for f in manifest.files):
        check_engine_target(manifest.tensorrt or {}, here)


def parity_summary(manifest: Manifest) -> list[str]:
    """One line per parity check recorded at export time (what ``export`` and ``info`` print)."""
    lines = []
    for name, rep in manifest.parity.items():
        if "depth" not in rep:
            lines.append(f"parity {name}: {rep}")
            continue
        worst = max((d["rel"] for diffs in rep["components"].values() for d in diffs), default=0.0)
        lines.append(f"parity {name} ({rep['backend']}): metric depth AbsRel {rep['depth']['abs_rel']:.2e}, "
                     f"worst output rel. error {worst:.2e}, {'passed' if rep['passed'] else 'FAILED'}")
    return lines
