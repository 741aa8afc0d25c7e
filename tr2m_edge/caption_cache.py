"""The caption cache of a bundle (``BUNDLE/scenes/``): each caption's scene bias, on disk.

A caption ("warehouse aisle") becomes the head's per-scene bias once (tokenizer ->
``text_encoder`` -> ``scene_bias``, run by the runtime:
:mod:`tr2m_edge.runtime.scene_bias`); the runtime then feeds the cached (1, C) vector to
every frame. Switching captions costs one text-encoder call, never a restart. This module
is the storage format only (numpy, no PyTorch, no ONNX Runtime); whoever opens a cache
passes the function that computes biases for captions it does not hold yet.

Each entry is two files, for an entry named ``<slug>-<key[:10]>``:

* ``<name>.<sha[:12]>.npy``: the bias, float32 (1, C), named by its own content;
* ``<name>.json``: caption, normalised caption, key, the text-encoder and head hashes it
  was computed with, the ``.npy`` file's name and sha256, shape and creation time.

Two places hold entries, in this one format: the bundle's own ``scenes/`` (written only by
``export`` and ``scenes add``: the captions that travel with the bundle) and the user cache
``$XDG_CACHE_HOME/tr2m-edge/scenes/<hashes>/`` (:func:`user_scenes_dir`), where the runtime
(``run``, ``bench``, ``set_scene``) stores captions it computes, so that a read-only bundle
(a container image, a flashed device) works and no run ever writes into a bundle.
:class:`CaptionLookup` reads both, in that order, and keeps biases in memory too
(``--no-cache``: memory only).

The key is sha256(normalised caption + text-encoder hash + head hash), so a bias is never
reused with other weights. Both files are written atomically (temp file + fsync +
rename), the ``.npy`` first and under a new name: the ``.json`` is the commit record and
is only ever replaced by another complete record, so a crash (even SIGKILL, tested) at any
point leaves the old entry or the new one, plus at worst an orphan ``.npy`` that is
ignored and swept later. A tampered ``.npy`` is caught by its sha256 and named.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tr2m_edge.bundle import Bundle, open_bundle
from tr2m_edge.errors import BundleError, InputError, OutputError
from tr2m_edge.fileio import write_bytes_atomic, write_json_atomic

log = logging.getLogger(__name__)
BiasFn = Callable[[list[str]], np.ndarray]  # captions -> (B, C) float32 scene biases

SCENES_DIR = "scenes"
SCENE_FORMAT = "tr2m-edge/scene"
_STALE_TMP_S = 600.0


def normalise_caption(caption: str) -> str:
    """Strip, collapse whitespace, lower-case: 'Warehouse  Aisle ' -> 'warehouse aisle'."""
    if not isinstance(caption, str):
        raise InputError(f"A caption must be a string; got {type(caption).__name__}.")
    text = " ".join(caption.split()).lower()
    if not text:
        raise InputError("The caption is empty; describe the scene, e.g. \"warehouse aisle\".")
    return text


def scene_key(caption: str, text_encoder_hash: str, head_hash: str) -> str:
    """sha256 hex of the normalised caption and the two weight hashes."""
    payload = json.dumps([normalise_caption(caption), text_encoder_hash, head_hash])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def entry_name(caption: str, key: str) -> str:
    """File stem of an entry: readable slug of the caption + the key prefix."""
    slug = re.sub(r"[^a-z0-9]+", "-", normalise_caption(caption)).strip("-")[:40] or "scene"
    return f"{slug}-{key[:10]}"


@dataclass(frozen=True)
class CacheEntry:
    """Metadata of one cached scene bias."""

    name: str
    caption: str
    normalised: str
    key: str
    text_encoder_hash: str
    head_hash: str
    file: str  # .npy file name inside scenes/ (<name>.<sha256[:12]>.npy)
    sha256: str
    shape: tuple[int, ...]
    created: float

    def to_dict(self) -> dict[str, object]:
        return {"format": SCENE_FORMAT, **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, object], where: Path) -> "CacheEntry":
        try:
            if d.get("format") != SCENE_FORMAT:
                raise KeyError("format")
            return cls(
                name=str(d["name"]), caption=str(d["caption"]), normalised=str(d["normalised"]), key=str(d["key"]),
                text_encoder_hash=str(d["text_encoder_hash"]), head_hash=str(d["head_hash"]), file=str(d["file"]),
                sha256=str(d["sha256"]), shape=tuple(int(v) for v in d["shape"]),  # type: ignore[union-attr]
                created=float(d["created"]),  # type: ignore[arg-type]
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(
                f"Scene cache entry {where} is malformed ({exc}). Remove it with `tr2m-edge scenes rm` and add the caption again."
            ) from None


class CaptionCache:
    """The caption cache of one bundle.

    Args:
        bundle: an opened :class:`~tr2m_edge.bundle.Bundle` or its folder (opened
            without re-hashing every graph; the graphs used are checked when loaded).
        compute: captions -> (B, C) float32 scene biases, for captions not cached yet
            (:func:`tr2m_edge.runtime.scene_bias.caption_cache` passes the bundle's own graphs).
        root: the folder the entries live in: the bundle's ``scenes/`` (default) or the
            user cache (:func:`user_scenes_dir`); the same format in both.
    """

    def __init__(self, bundle: Bundle | str | Path, compute: BiasFn | None = None, root: Path | None = None) -> None:
        self.bundle = bundle if isinstance(bundle, Bundle) else open_bundle(bundle, verify=False)
        self.root = Path(root) if root is not None else self.bundle.root / SCENES_DIR
        hashes = self.bundle.manifest.hashes
        missing = [k for k in ("text_encoder", "head") if not hashes.get(k)]
        if missing:
            raise BundleError(
                f"Bundle {self.bundle.root} records no {' / '.join(missing)} hash in its manifest, so cached scenes "
                "cannot be keyed. Re-export it with this tr2m-edge."
            )
        self.text_encoder_hash = str(hashes["text_encoder"])
        self.head_hash = str(hashes["head"])
        self._compute = compute

    # ----------------------------------------------------------- lookups
    def key(self, caption: str) -> str:
        return scene_key(caption, self.text_encoder_hash, self.head_hash)

    def _paths(self, caption: str) -> tuple[str, Path]:
        name = entry_name(caption, self.key(caption))
        return name, self.root / f"{name}.json"

    def _read(self, meta_path: Path) -> CacheEntry:
        try:
            data = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BundleError(
                f"Scene cache entry {meta_path} is corrupt ({exc}). Remove it with `tr2m-edge scenes rm` and add the caption again."
            ) from None
        return CacheEntry.from_dict(data, meta_path)

    def _load(self, entry: CacheEntry) -> np.ndarray:
        path = self.root / entry.file
        try:
            raw = path.read_bytes()
        except OSError:
            raise BundleError(
                f"Scene cache file {path} is missing; remove the entry with `tr2m-edge scenes rm {self.bundle.root} {entry.name}`."
            ) from None
        if hashlib.sha256(raw).hexdigest() != entry.sha256:
            raise BundleError(
                f"Scene cache file {path} does not match its sha256 (modified or corrupted). Remove it with "
                f"`tr2m-edge scenes rm {self.bundle.root} {entry.name}` and add the caption again."
            )
        bias = np.load(io.BytesIO(raw), allow_pickle=False)
        if bias.dtype != np.float32 or tuple(bias.shape) != entry.shape:
            raise BundleError(f"Scene cache file {path} holds {bias.dtype} {bias.shape}; expected float32 {entry.shape}.")
        return bias

    def get(self, caption: str) -> np.ndarray | None:
        """The cached (1, C) float32 bias of ``caption``, or None when not cached.

        Raises BundleError naming the file when a cached entry is corrupt.
        """
        _, meta = self._paths(caption)
        for attempt in range(2):
            if not meta.is_file():
                return None
            entry = self._read(meta)
            if entry.key != self.key(caption):
                return None
            if attempt == 0 and not (self.root / entry.file).is_file():
                continue  # replaced by a concurrent writer between the two reads: read the new record
            return self._load(entry)
        return None

    # ----------------------------------------------------------- writes
    def compute(self, captions: list[str]) -> np.ndarray:
        """(B, C) biases for ``captions`` from the ``compute`` function this cache was opened with."""
        if self._compute is None:
            raise BundleError(f"The caption cache of {self.bundle.root} was opened read-only (no way to compute "
                              "new scene biases); open it with tr2m_edge.runtime.scene_bias.caption_cache.")
        return self._compute(captions)

    def add(self, caption: str, bias: np.ndarray | None = None) -> CacheEntry:
        """Compute (unless given) and store the bias of ``caption``; replaces an existing entry."""
        normalised = normalise_caption(caption)
        if bias is None:
            bias = self.compute([caption])
        bias = np.ascontiguousarray(np.asarray(bias, dtype=np.float32).reshape(1, -1))
        name, meta = self._paths(caption)
        try:
            self.root.mkdir(parents=True, exist_ok=True)  # the user cache's parents may not exist yet
            self._sweep()
            buf = io.BytesIO()
            np.save(buf, bias, allow_pickle=False)
            data = buf.getvalue()
            digest = hashlib.sha256(data).hexdigest()
            npy = self.root / f"{name}.{digest[:12]}.npy"
            try:
                old = self._read(meta).file if meta.is_file() else None
            except BundleError:  # a corrupt record is simply replaced
                old = None
            write_bytes_atomic(npy, data)  # a new file: the committed entry still points at the old one
            entry = CacheEntry(
                name=name, caption=caption, normalised=normalised, key=self.key(caption),
                text_encoder_hash=self.text_encoder_hash, head_hash=self.head_hash, file=npy.name,
                sha256=digest, shape=tuple(bias.shape), created=time.time(),
            )
            write_json_atomic(meta, entry.to_dict())  # the commit
            if old and old != npy.name:
                (self.root / old).unlink(missing_ok=True)
        except BundleError:
            raise
        except OSError as exc:
            raise BundleError(f"Cannot write the scene cache in {self.root}: {exc.strerror or exc}. Check the folder's permissions.") from None
        log.info("cached scene '%s' as %s", normalised, name)
        return entry

    def get_or_add(self, caption: str) -> np.ndarray:
        """The (1, C) float32 bias of ``caption``, computed and cached on first use.

        A corrupt cached entry is logged (by file name) and recomputed.
        """
        try:
            bias = self.get(caption)
        except BundleError as exc:
            log.warning("%s Recomputing it.", exc)
            bias = None
        if bias is None:
            bias = self.compute([caption])
            self.add(caption, bias)
            bias = np.ascontiguousarray(bias.reshape(1, -1), dtype=np.float32)
        return bias

    def list(self) -> list[CacheEntry]:
        """All committed entries (orphan .npy and temp files are ignored), sorted by caption."""
        if not self.root.is_dir():
            return []
        entries = []
        for meta in sorted(self.root.glob("*.json")):
            try:
                entries.append(self._read(meta))
            except BundleError as exc:
                log.warning("%s", exc)
        return sorted(entries, key=lambda e: (e.normalised, e.name))

    def verify(self) -> list[CacheEntry]:
        """Check every entry's record and bias file (sha256); BundleError naming the first bad one."""
        entries = []
        if self.root.is_dir():
            for meta in sorted(self.root.glob("*.json")):
                entry = self._read(meta)
                self._load(entry)
                entries.append(entry)
        return entries

    def names(self) -> dict[str, str]:
        """Entry name -> caption of the current entries (lets a user type a listed name)."""
        return {e.name: e.caption for e in self.list() if self.is_current(e)}

    def is_current(self, entry: CacheEntry) -> bool:
        """True when the entry was computed with this bundle's text encoder and head."""
        return entry.text_encoder_hash == self.text_encoder_hash and entry.head_hash == self.head_hash

    def remove(self, name_or_caption: str) -> CacheEntry:
        """Delete an entry given its name (as listed) or its caption; InputError if unknown."""
        meta = self.root / f"{name_or_caption}.json"
        if "/" in name_or_caption or not meta.is_file():
            meta = None
            try:
                wanted = normalise_caption(name_or_caption)
            except InputError:
                wanted = ""
            for entry in self.list():
                if entry.normalised == wanted and self.is_current(entry):
                    meta = self.root / f"{entry.name}.json"
                    break
        if meta is None or not meta.is_file():
            have = ", ".join(e.name for e in self.list()) or "none"
            raise InputError(f"No cached scene '{name_or_caption}' in {self.bundle.root}. Cached: {have}.")
        entry = self._read(meta)
        meta.unlink()  # the commit record goes first: a crash leaves only an ignored orphan
        (self.root / entry.file).unlink(missing_ok=True)
        return entry

    def close(self) -> None:
        """Release what the compute function holds (its sessions), if anything."""
        close = getattr(self._compute, "close", None)
        if callable(close):
            close()

    def _sweep(self) -> None:
        """Delete temp files and unreferenced .npy files older than a few minutes (left by crashes).

        Young ones are kept: they may belong to a writer that has not committed yet.
        """
        now = time.time()
        referenced = set()
        for meta in self.root.glob("*.json"):
            try:
                referenced.add(self._read(meta).file)
            except BundleError:
                continue
        for path in [*self.root.glob("*.tmp"), *self.root.glob("*.npy")]:
            try:
                if path.name not in referenced and now - path.stat().st_mtime > _STALE_TMP_S:
                    path.unlink()
            except OSError:
                pass


def user_scenes_dir(bundle: Bundle) -> Path:
    """The user cache folder of a bundle's captions: ``$XDG_CACHE_HOME/tr2m-edge/scenes/<te>-<head>/``
    (default ``~/.cache``), named by the bundle's text-encoder and head hashes (16 hex digits
    each), so every copy of a bundle, and every bundle with the same weights, shares it."""
    from tr2m_edge.fileio import user_cache_dir

    hashes = bundle.manifest.hashes
    key = f"{str(hashes.get('text_encoder', ''))[:16]}-{str(hashes.get('head', ''))[:16]}"
    return user_cache_dir(SCENES_DIR, key)


class CaptionLookup:
    """Caption -> (1, C) scene bias for the runtime; never writes into the bundle.

    Looks in memory, then the bundle's ``scenes/`` (read only), then the user cache; a
    caption found nowhere is computed once and stored in the user cache (``persist``) or
    only in memory. When the user cache cannot be written (read-only home, no home), the
    bias stays in memory and a warning says so once.

    Args:
        bundle: the opened bundle.
        compute: captions -> (B, C) float32 biases (the bundle's own graphs).
        persist: store new captions in the user cache (False: memory only, ``--no-cache``).
    """

    def __init__(self, bundle: Bundle, compute: BiasFn, persist: bool = True) -> None:
        self.bundle_cache = CaptionCache(bundle)
        self.user_cache: CaptionCache | None = None
        if persist:
            try:
                self.user_cache = CaptionCache(bundle, compute, root=user_scenes_dir(bundle))
            except OutputError as exc:
                log.warning("%s New captions are kept in memory only.", exc)
        self._compute = compute
        self.memory: dict[str, np.ndarray] = {}

    def caches(self) -> list[CaptionCache]:
        """The on-disk caches read, in order: the bundle's, then the user cache."""
        return [self.bundle_cache] + ([self.user_cache] if self.user_cache is not None else [])

    def get(self, caption: str) -> np.ndarray | None:
        """The bias of ``caption`` from memory or a cache (None when nowhere); a corrupt entry is logged and skipped."""
        key = normalise_caption(caption)
        if key in self.memory:
            return self.memory[key]
        for cache in self.caches():
            try:
                bias = cache.get(caption)
            except BundleError as exc:
                log.warning("%s Recomputing it.", exc)
                continue
            if bias is not None:
                self.memory[key] = bias
                return bias
        return None

    def get_or_add(self, caption: str) -> np.ndarray:
        """The (1, C) float32 bias of ``caption``, computed on first use and cached (user cache or memory)."""
        bias = self.get(caption)
        if bias is not None:
            return bias
        bias = np.ascontiguousarray(np.asarray(self._compute([caption]), dtype=np.float32).reshape(1, -1))
        if self.user_cache is not None:
            try:
                self.user_cache.add(caption, bias)
            except BundleError as exc:
                log.warning("%s New captions are kept in memory only.", exc)
                self.user_cache = None
        self.memory[normalise_caption(caption)] = bias
        return bias

    def get_or_compute(self, caption: str) -> np.ndarray:
        """The (1, C) float32 bias of ``caption`` from memory or a cache, else computed and not stored.

        For captions that come with every frame (synthetic scenes'): the caller keeps its own
        bounded cache (:class:`~tr2m_edge.runtime.stages.CaptionState`), no entry is written.
        """
        bias = self.get(caption)
        if bias is not None:
            return bias
        return np.ascontiguousarray(np.asarray(self._compute([caption]), dtype=np.float32).reshape(1, -1))

    def names(self) -> dict[str, str]:
        """Entry name -> caption of the current entries: the bundle's first, then the user cache's."""
        names: dict[str, str] = {}
        for cache in self.caches():
            for name, caption in cache.names().items():
                names.setdefault(name, caption)
        return names

    def close(self) -> None:
        """Release what the compute function holds (its sessions)."""
        close = getattr(self._compute, "close", None)
        if callable(close):
            close()
