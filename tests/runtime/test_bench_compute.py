"""bench's achieved GMAC/s per component (MACs recorded at export) and bundles side by side."""

from __future__ import annotations

import json

import pytest

from tr2m_edge.cli import main


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


QUICK = ["--modes", "serial", "--frames", 3, "--warmup", 1, "--no-reference"]


def test_export_records_the_mac_counter_per_component(tiny_bundle):
    from tr2m_edge.bundle import open_bundle
    from tr2m_edge.model.macs import count_macs

    bundle = open_bundle(tiny_bundle)
    record = bundle.manifest.macs
    assert record is not None
    assert record == count_macs(bundle.config).record()
    assert record.input_size == tuple(bundle.config.preprocess.input_size)
    assert set(record.per_frame) == {"preprocess", "depth", "image_encoder", "head"} and record.per_frame["head"] > 0


def test_bench_divides_the_recorded_macs_by_the_measured_stage_times(tiny_bundle, tmp_path, capsys):
    report = tmp_path / "bench.json"
    code, out, err = run_cli(["bench", tiny_bundle, *QUICK, "--peak", 100, "--json", report], capsys)
    assert code == 0, err
    assert "Achieved compute: GMAC/s (share of peak)" in out and "given with --peak" in out
    data = json.loads(report.read_text())
    compute = data["compute"]
    assert compute["peak"]["gmac_per_s"] == 50.0  # 100 GFLOP/s = 50 GMAC/s
    serial = data["results"][0]
    assert compute["modes"]["serial"].keys() >= {"depth", "image_encoder", "head", "frame"}
    for name in ("depth", "image_encoder", "head"):
        cell = compute["modes"]["serial"][name]
        seconds = serial["stage_ms"][name]["mean"] / 1e3
        assert cell["gmac_per_s"] == pytest.approx(compute["gmac"][name] / seconds)
        assert cell["fraction"] == pytest.approx(cell["gmac_per_s"] / 50.0)
    frame = compute["modes"]["serial"]["frame"]
    assert frame["gmac_per_s"] == pytest.approx(compute["gmac"]["frame"] * serial["fps"])


def test_bench_probes_the_peak_and_refuses_a_bad_one(tiny_bundle, capsys):
    code, out, err = run_cli(["bench", tiny_bundle, *QUICK], capsys)
    assert code == 0, err
    assert "probe: 1024^3 float32 matmul (numpy)" in out and " %)" in out
    code, out, err = run_cli(["bench", tiny_bundle, *QUICK, "--peak", 0], capsys)
    assert code == 2 and "--peak must be a positive GFLOP/s figure" in err


def test_a_manifest_without_mac_counts_still_loads_and_benches(bundle_copy, capsys):
    from tr2m_edge.bundle import MANIFEST, manifest_digest, open_bundle

    path = bundle_copy / MANIFEST
    data = json.loads(path.read_text())
    del data["macs"]  # as exported before MACs were recorded
    data["digest"] = manifest_digest(data)
    path.write_text(json.dumps(data))
    assert open_bundle(bundle_copy).manifest.macs is None
    code, out, err = run_cli(["bench", bundle_copy, *QUICK], capsys)
    assert code == 0, err
    assert "records no MAC counts" in out


def test_two_bundles_side_by_side(tiny_bundle, bundle_copy, tmp_path, capsys):
    report = tmp_path / "both.json"
    code, out, err = run_cli(["bench", tiny_bundle, bundle_copy, *QUICK, "--rounds", 2, "--json", report], capsys)
    assert code == 0, err
    assert "Bundles side by side" in out and f"{bundle_copy} vs {tiny_bundle}" in out.replace("\n", "")
    data = json.loads(report.read_text())
    rows = data["bundles"]
    assert [r["bundle"] for r in rows] == [str(tiny_bundle), str(bundle_copy)]
    for row, rep in zip(rows, data["reports"]):
        assert len(row["fps_rounds"]["serial"]) == 2 and row["fps"]["serial"] == max(row["fps_rounds"]["serial"])
        assert rep["results"][0]["fps"] == row["fps"]["serial"]  # the kept report is the best round
        assert row["preset"] == "tiny" and row["output_stride"] == 1 and row["gmac_per_frame"] > 0
    code, out, err = run_cli(["bench", tiny_bundle, *QUICK, "--rounds", 2], capsys)
    assert code == 2 and "--rounds goes with two or more bundles" in err


def test_info_shows_a_bundles_macs_without_pytorch(tiny_bundle):
    import subprocess
    import sys

    from tr2m_edge.bundle import open_bundle

    record = open_bundle(tiny_bundle).manifest.macs
    block = "".join(f"sys.modules[{m!r}] = None; " for m in ("torch", "torchvision", "transformers", "open_clip"))
    code = f"import sys; {block}\nfrom tr2m_edge.cli import main\nmain(['info', {str(tiny_bundle)!r}])"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "COLUMNS": "200"})
    assert proc.returncode in (0, None) and "Traceback" not in proc.stderr, proc.stderr
    h, w = record.input_size
    assert f"MACs per frame at {h}x{w}: {record.frame_total / 1e9:.2f} GMAC" in proc.stdout
