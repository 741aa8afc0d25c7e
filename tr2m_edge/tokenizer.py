"""CLIP's byte-level BPE tokenizer in plain Python + numpy (no PyTorch, no open_clip).

Gives the same token ids as ``open_clip.get_tokenizer("ViT-L-14")`` (the OpenAI CLIP
tokenizer) so that a bundle's text encoder can run where neither torch nor open_clip is
installed. The algorithm, from the CLIP paper's public description:

1. clean: ``ftfy.fix_text``, HTML-unescape twice, collapse whitespace, lower-case;
2. split into pre-tokens: the special tokens, the contractions ``'s 't 're 've 'm 'll 'd``,
   runs of letters (Unicode category L*), single digits/numerals (N*), and runs of
   anything else that is not whitespace;
3. map each pre-token's UTF-8 bytes to printable characters (GPT-2's reversible byte
   alphabet), mark the last symbol with ``</w>``, and apply the ranked merges of the
   vocabulary file until no ranked pair is left;
4. ``[<start_of_text>] + ids + [<end_of_text>]``, truncated to the context length (the
   last kept id becomes ``<end_of_text>``) and zero-padded.

The vocabulary file (``bpe_simple_vocab_16e6.txt.gz``, 48,894 merges) ships inside the
open_clip package and is copied into every bundle.
"""

from __future__ import annotations

import gzip
import html
import importlib.util
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import ftfy
import numpy as np

from tr2m_edge.config import CONTEXT_LENGTH
from tr2m_edge.errors import InputError

VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
NUM_MERGES = 49152 - 256 - 2  # merges used by CLIP; the file holds more lines
START_TOKEN = "<start_of_text>"
END_TOKEN = "<end_of_text>"
_CONTRACTIONS = ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d")
_END_OF_WORD = "</w>"


def default_vocab_path() -> Path:
    """The vocabulary file inside the installed open_clip package (found without importing it)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            f"Cannot find {VOCAB_FILE}: open_clip is not installed. Install open_clip_torch, or pass "
            "the vocabulary file (a bundle ships its own copy under tokenizer/)."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / VOCAB_FILE
    if not path.is_file():
        raise InputError(f"open_clip is installed but {path} is missing; reinstall open_clip_torch.")
    return path


def byte_alphabet() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table (256 entries, in vocabulary order).

    Printable Latin-1 bytes map to themselves; the 68 others (controls, space, NBSP,
    soft hyphen) map to code points 256, 257, ... in byte order.
    """
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def clean_text(text: str) -> str:
    """ftfy repair, HTML unescape (twice), whitespace collapse, lower-case."""
    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return " ".join(text.split()).lower()


def _kind(ch: str) -> str:
    if ch.isspace():
        return "space"
    cat = unicodedata.category(ch)[0]
    return {"L": "letter", "N": "number"}.get(cat, "other")


def pre_tokenize(text: str, specials: Sequence[str] = (START_TOKEN, END_TOKEN)) -> list[str]:
    """Split cleaned text into the pieces that BPE encodes separately.

    Alternatives are tried in order at each position (first match wins): a special token,
    a contraction, a run of letters, ONE numeral, a run of other non-space characters.
    Whitespace separates pieces and is dropped.
    """
    pieces: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        kind = _kind(ch)
        if kind == "space":
            i += 1
            continue
        special = next((s for s in specials if text.startswith(s, i)), None)
        if special is not None:
            pieces.append(special)
            i += len(special)
            continue
        if ch == "'":
            contraction = next((c for c in _CONTRACTIONS if text.startswith(c, i)), None)
            if contraction is not None:
                pieces.append(contraction)
                i += len(contraction)
                continue
        j = i + 1
        if kind == "letter":
            while j < n and _kind(text[j]) == "letter":
                j += 1
        elif kind == "other":
            while j < n and _kind(text[j]) == "other":
                j += 1
        pieces.append(text[i:j])
        i = j
    return pieces


class ClipTokenizer:
    """CLIP BPE tokenizer reading the open_clip vocabulary file.

    Args:
        vocab_path: ``bpe_simple_vocab_16e6.txt.gz`` (default: the one inside open_clip).
        context_length: tokens per caption (77 for CLIP).
    """

    def __init__(self, vocab_path: str | Path | None = None, context_length: int = CONTEXT_LENGTH) -> None:
        path = Path(vocab_path) if vocab_path is not None else default_vocab_path()
        if not path.is_file():
            raise InputError(f"Tokenizer vocabulary not found: {path}. Expected CLIP's {VOCAB_FILE}.")
        try:
            lines = gzip.decompress(path.read_bytes()).decode("utf-8").split("\n")
        except (OSError, EOFError, UnicodeDecodeError) as exc:
            raise InputError(f"Cannot read the tokenizer vocabulary {path} ({exc}); expected a gzip text file.") from None
        merges = [tuple(line.split()) for line in lines[1:NUM_MERGES + 1]]
        good = sum(len(m) == 2 for m in merges)
        if good != NUM_MERGES:
            raise InputError(
                f"{path} holds {good} well-formed merges; CLIP's vocabulary has {NUM_MERGES}. "
                "Use the bpe_simple_vocab_16e6.txt.gz shipped with open_clip."
            )
        self.path = path
        self.context_length = int(context_length)
        self._bytes = byte_alphabet()
        symbols = list(self._bytes.values())
        vocab = symbols + [s + _END_OF_WORD for s in symbols] + ["".join(m) for m in merges] + [START_TOKEN, END_TOKEN]
        self.encoder: dict[str, int] = {tok: i for i, tok in enumerate(vocab)}
        self.ranks: dict[tuple[str, str], int] = {m: r for r, m in enumerate(merges)}  # type: ignore[misc]
        self.sot_id = self.encoder[START_TOKEN]
        self.eot_id = self.encoder[END_TOKEN]
        self.vocab_size = len(vocab)
        self._cache: dict[str, list[str]] = {START_TOKEN: [START_TOKEN], END_TOKEN: [END_TOKEN]}

    def bpe(self, piece: str) -> list[str]:
        """Merge the byte symbols of one pre-token (already byte-mapped) into vocabulary tokens."""
        cached = self._cache.get(piece)
        if cached is not None:
            return cached
        word = list(piece[:-1]) + [piece[-1] + _END_OF_WORD]
        while len(word) > 1:
            best_rank, best = None, None
            for pair in zip(word, word[1:]):
                rank = self.ranks.get(pair)
                if rank is not None and (best_rank is None or rank < best_rank):
                    best_rank, best = rank, pair
            if best is None:
                break
            merged: list[str] = []
            i = 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == best[0] and word[i + 1] == best[1]:
                    merged.append(best[0] + best[1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        if len(self._cache) < 100_000:
            self._cache[piece] = word
        return word

    def encode(self, text: str) -> list[int]:
        """Token ids of one caption, without the start/end tokens or padding."""
        ids: list[int] = []
        for piece in pre_tokenize(clean_text(text)):
            if piece in (START_TOKEN, END_TOKEN):
                ids.append(self.encoder[piece])
                continue
            mapped = "".join(self._bytes[b] for b in piece.encode("utf-8"))
            ids.extend(self.encoder[tok] for tok in self.bpe(mapped))
        return ids

    def __call__(self, texts: str | Sequence[str]) -> np.ndarray:
        """Captions -> (B, context_length) int64 ids: start, tokens, end, zero padding.

        Captions longer than the context are truncated; the last kept id becomes the end
        token (as open_clip does), so the text encoder's end-of-text pooling still works.
        """
        if isinstance(texts, str):
            texts = [texts]
        if not all(isinstance(t, str) for t in texts):
            raise InputError(f"Captions must be strings; got {[type(t).__name__ for t in texts]}.")
        out = np.zeros((len(texts), self.context_length), dtype=np.int64)
        for row, text in enumerate(texts):
            ids = [self.sot_id, *self.encode(text), self.eot_id]
            if len(ids) > self.context_length:
                ids = ids[: self.context_length]
                ids[-1] = self.eot_id
            out[row, : len(ids)] = ids
        return out

    def describe(self) -> dict[str, object]:
        """Manifest entry fields: name, context length and the special-token ids."""
        return {
            "name": "clip-bpe",
            "compatible_with": "open_clip.get_tokenizer('ViT-L-14')",
            "context_length": self.context_length,
            "vocab_size": self.vocab_size,
            "sot_id": self.sot_id,
            "eot_id": self.eot_id,
            "clean": "ftfy.fix_text, html.unescape x2, whitespace collapse, lower",
        }
