"""Class 7: the manifest is covered by its own digest, names only files inside the bundle, and
``info`` verifies the caption cache too."""

from __future__ import annotations

import json

import pytest

from battery_common import snapshot


def test_one_byte_valid_json_edit_is_refused(bundle_copy, cli, assert_one_line):
    path = bundle_copy / "manifest.json"
    text = path.read_text()
    assert '"max_depth": 80.0' in text
    path.write_text(text.replace('"max_depth": 80.0', '"max_depth": 20.0', 1))  # still valid JSON
    before = snapshot(bundle_copy)
    code, _, err = cli("info", bundle_copy)
    assert_one_line(code, err, r"manifest\.json does not match its own digest")
    code, _, err = cli("run", "-b", bundle_copy, "--synthetic", "-n", "1", "--text", "a room")
    assert_one_line(code, err, r"does not match its own digest")
    assert snapshot(bundle_copy) == before


def test_a_file_outside_the_bundle_is_never_read(bundle_copy, tmp_path, cli, assert_one_line):
    from tr2m_edge.bundle import manifest_digest

    secret = tmp_path / "secret.onnx"
    secret.write_bytes(b"secret")
    path = bundle_copy / "manifest.json"
    data = json.loads(path.read_text())
    data["files"][0]["file"] = "../secret.onnx"
    data["digest"] = manifest_digest(data)
    path.write_text(json.dumps(data))
    code, _, err = cli("info", bundle_copy)
    assert_one_line(code, err, r"names the file '\.\./secret\.onnx', which is not a path inside the bundle")


@pytest.mark.parametrize("name", ["/etc/passwd", "C:/x.onnx"])
def test_absolute_paths_are_refused(name):
    from tr2m_edge.bundle import ComponentFile
    from tr2m_edge.errors import BundleError

    with pytest.raises(BundleError, match="not a path inside the bundle"):
        ComponentFile("depth", name, "0" * 64, "fp32")


def test_info_verifies_the_caption_cache(bundle_copy, cli, assert_one_line):
    npy = next((bundle_copy / "scenes").glob("*.npy"))
    data = bytearray(npy.read_bytes())
    data[-1] ^= 0xFF
    npy.write_bytes(bytes(data))
    code, _, err = cli("info", bundle_copy)
    assert_one_line(code, err, rf"Scene cache file .*{npy.name} does not match its sha256")
