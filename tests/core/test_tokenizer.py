"""The numpy CLIP tokenizer gives open_clip's token ids (tr2m_edge/tokenizer.py)."""

from __future__ import annotations

import gzip
import random

import numpy as np
import pytest

from tr2m_edge.errors import InputError
from tr2m_edge.tokenizer import CONTEXT_LENGTH, ClipTokenizer, default_vocab_path, pre_tokenize

CAPTIONS = [
    "warehouse aisle", "", "   ", "A photo of a Cat!!!", "don't stop, it's 12:30 p.m. — okay?",
    "naïve café résumé", "日本語のテキスト 東京", "emoji 🚀🔥 test", "it’s “curly” quotes", "&amp; &lt;b&gt; html",
    "tab\tnew\nline", "x" * 300, " ".join(["word"] * 100), "under_score snake_case 3.14159", "ﬁne ligature ＦＵＬＬ",
    "Ⅻ ² ½ numbers", "<start_of_text> hi <end_of_text>", "'s 'S 'LL 've'd", "Привет мир", "مرحبا بالعالم",
    "a\u0301 combining", "An image with a sky, two people, a dog and 3 cars.",
]


@pytest.fixture(scope="module")
def tokenizers():
    import open_clip

    return ClipTokenizer(), open_clip.get_tokenizer("ViT-L-14")


def test_equal_to_open_clip_on_captions(tokenizers):
    ours, theirs = tokenizers
    got = ours(CAPTIONS)
    want = theirs(CAPTIONS).numpy()
    assert got.dtype == np.int64 and got.shape == (len(CAPTIONS), CONTEXT_LENGTH)
    for caption, g, w in zip(CAPTIONS, got, want):
        assert np.array_equal(g, w), caption


def test_equal_to_open_clip_on_random_strings(tokenizers):
    ours, theirs = tokenizers
    rng = random.Random(0)
    pool = list("abcXYZ '’.,!?-_0123456789<>&;#") + ["é", "ß", "İ", "²", "½", "\u0301", "\u200b", "\u00a0", "\u3000",
                                                      "日", "🚀", "ﬁ", "Ｆ", "\t", "\n", "'s", "<start_of_text>", "&amp;"]
    texts = ["".join(rng.choice(pool) for _ in range(rng.randint(0, 40))) for _ in range(400)]
    assert np.array_equal(ours(texts), theirs(texts).numpy())


def test_truncation_keeps_the_end_token_last(tokenizers):
    ours, _ = tokenizers
    ids = ours(" ".join(["word"] * 100))[0]
    assert ids[0] == ours.sot_id and ids[-1] == ours.eot_id and (ids != 0).all()
    empty = ours("")[0]
    assert list(empty[:2]) == [ours.sot_id, ours.eot_id] and not empty[2:].any()
    assert ours.vocab_size == 49408


def test_pre_tokenize_rules():
    assert pre_tokenize("don't go!!'s 12") == ["don", "'t", "go", "!!'", "s", "1", "2"]
    assert pre_tokenize("<start_of_text>hi") == ["<start_of_text>", "hi"]


def test_bad_vocabulary_files(tmp_path):
    with pytest.raises(InputError, match="Tokenizer vocabulary not found"):
        ClipTokenizer(tmp_path / "missing.txt.gz")
    (tmp_path / "plain.txt.gz").write_text("not gzip")
    with pytest.raises(InputError, match="Cannot read the tokenizer vocabulary"):
        ClipTokenizer(tmp_path / "plain.txt.gz")
    (tmp_path / "short.txt.gz").write_bytes(gzip.compress(b"#version\na b\n"))
    with pytest.raises(InputError, match="holds 1 well-formed merges; CLIP's vocabulary has 48894"):
        ClipTokenizer(tmp_path / "short.txt.gz")
    with pytest.raises(InputError, match="Captions must be strings"):
        ClipTokenizer()([1, 2])  # type: ignore[list-item]


def test_runs_without_torch_or_open_clip(run_blocked):
    out = run_blocked("from tr2m_edge.tokenizer import ClipTokenizer\n"
                      f"print(ClipTokenizer({str(default_vocab_path())!r})(['warehouse aisle'])[0, :5].tolist())")
    assert out.strip() == "[49406, 13054, 26917, 49407, 0]"  # as open_clip gives
