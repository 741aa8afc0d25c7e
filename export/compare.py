"""Measure which exporter gives the faster ONNX Runtime graphs (how DEFAULT_EXPORTER was chosen).

Exports the per-frame components of a preset with random weights, once with each exporter,
and times each graph on ONNX Runtime's CPU provider with bench's per-graph timing loop
(:func:`tr2m_edge.runtime.bench.time_runners`: median of ``--repeats`` interleaved runs
after a warm-up). Usage::

    python -m tr2m_edge.export.compare --preset tiny
    python -m tr2m_edge.export.compare --preset edge --random-encoders --input-size 434x560 \
        --components depth --repeats 5
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from tr2m_edge.config import get_preset, parse_size
from tr2m_edge.export.onnx_export import EXPORTERS, export_graph
from tr2m_edge.runtime.bench import time_runners
from tr2m_edge.runtime.runners.base import activated
from tr2m_edge.runtime.runners.onnxrt import OrtRunner


def compare_exporters(
    preset: str = "tiny",
    *,
    input_size: tuple[int, int] | None = None,
    random_encoders: bool = False,
    components: tuple[str, ...] = ("depth", "image_encoder", "head", "text_encoder"),
    repeats: int = 10,
    threads: int = 2,
    attention: str | None = None,
) -> list[dict[str, object]]:
    """Per component and exporter: export time (s), ONNX Runtime median/min latency (ms), node count."""
    import onnx

    from tr2m_edge.model.summary import random_encoder_config
    from tr2m_edge.export.graphs import graph_specs
    from tr2m_edge.model import build_model
    from tr2m_edge.tokenizer import ClipTokenizer

    cfg = get_preset(preset)
    if input_size:
        cfg = cfg.replace(input_size=input_size)
    if random_encoders:
        cfg = random_encoder_config(cfg)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    if attention:
        for enc in (model.depth_encoder.model, getattr(model.image_encoder, "model", None)):
            if enc is not None:
                enc.set_attn_implementation(attention)
    tokens = torch.from_numpy(ClipTokenizer()(["a warehouse aisle", "an office"]))
    specs = {s.component: s for s in graph_specs(model, frame_size=cfg.preprocess.input_size, dynamic=False,
                                                 example_tokens=tokens)}
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in components:
            if name not in specs:
                continue
            spec = specs[name]
            feeds = {n: a.numpy() for n, a in zip(spec.input_names, spec.args)}
            paths, export_s = {}, {}
            for exporter in EXPORTERS:
                paths[exporter] = Path(tmp) / f"{name}.{exporter}.onnx"
                t0 = time.perf_counter()
                export_graph(spec, paths[exporter], exporter=exporter, opset=18 if exporter == "dynamo" else 17)
                export_s[exporter] = time.perf_counter() - t0
            runners = {e: OrtRunner(p, providers=("cpu",), intra_op_threads=threads, name=e) for e, p in paths.items()}
            with activated(runners) as active:
                timing = time_runners(active, feeds, repeats)
            for exporter in EXPORTERS:
                rows.append({
                    "component": name, "exporter": exporter, "export_s": round(export_s[exporter], 1),
                    "ort_ms": round(timing[exporter][0], 2), "ort_min_ms": round(timing[exporter][1], 2),
                    "nodes": len(onnx.load(str(paths[exporter]), load_external_data=False).graph.node),
                })
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny", help="preset to measure (tiny, edge, paper)")
    parser.add_argument("--input-size", default=None, help="network input HxW (multiples of 14)")
    parser.add_argument("--random-encoders", action="store_true",
                        help="build hub encoders with random weights at their published sizes")
    parser.add_argument("--components", default="depth,image_encoder,head,text_encoder",
                        help="comma-separated components to time")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per graph")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    parser.add_argument("--attention", default=None, choices=["eager", "sdpa"],
                        help="transformers attention implementation of the ViTs (default: the model's)")
    args = parser.parse_args(argv)
    rows = compare_exporters(
        args.preset, input_size=parse_size(args.input_size) if args.input_size else None,
        random_encoders=args.random_encoders, components=tuple(args.components.split(",")),
        repeats=args.repeats, threads=args.threads, attention=args.attention,
    )
    table = Table(title=f"Exporter comparison: {args.preset}, ONNX Runtime CPU, {args.threads} threads")
    cols = ("component", "exporter", "export_s", "ort_ms", "ort_min_ms", "nodes")
    for col in cols:
        table.add_column(col)
    for row in rows:
        table.add_row(*(str(row[c]) for c in cols))
    Console().print(table)
    per_frame = [r for r in rows if r["component"] != "text_encoder"]  # the text encoder runs once per scene
    totals = {e: (sum(float(r["ort_ms"]) for r in per_frame if r["exporter"] == e),
                  sum(float(r["ort_min_ms"]) for r in per_frame if r["exporter"] == e)) for e in EXPORTERS}
    Console(soft_wrap=True).print("per-frame ORT ms (components above except text_encoder), median / min: "
                                  + ", ".join(f"{e} {t[0]:.2f} / {t[1]:.2f}" for e, t in totals.items()))


if __name__ == "__main__":
    main()

