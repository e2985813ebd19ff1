"""Separation speed of Hybrid Demucs (`hdemucs_high`, 83.6 M parameters) on a stereo 44.1 kHz segment: torchaudio's
module in torch vs dfnb's `HDemucs` in torch vs dfnb's exported graph in ONNX Runtime, same random weights, one run.

    .venv/bin/python bench/bench_hdemucs.py [--seconds 10] [--threads 2] [--repeats 2]

RTF = processing time / audio duration (lower is faster), best of `--repeats` calls after one warm-up call. The
weights are torchaudio's seeded random initialisation (speed does not depend on them); the stems' SNR against
torchaudio is shown beside each time. torchaudio's `_hdemucs.py` is loaded from its wheel by `tests/_torchaudio_ref.py`."""
import argparse, os, sys, tempfile, time
from pathlib import Path
os.environ.setdefault("OMP_NUM_THREADS", "2")
import torch
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

def best(f, repeats):
    f(); ts = []
    for _ in range(repeats):
        t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    return min(ts)

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.); ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads); torch.set_num_interop_threads(1)
    from _torchaudio_ref import torchaudio_hdemucs, why_absent
    from dfnb.hdemucs import SOURCES, from_torchaudio
    from dfnb.hdemucs_onnx import export_hdemucs
    from dfnb.onnx_graph import ort_session
    from dfnb.metrics import snr
    from _results import table, write_results
    ta = torchaudio_hdemucs()
    if ta is None: sys.exit(f"bench_hdemucs: {why_absent()}")
    torch.manual_seed(0)
    ref = ta.hdemucs_high(sources=list(SOURCES)).eval(); ours = from_torchaudio(ref)
    S = int(a.seconds * 44100)
    x = torch.randn(1, 2, S) * 0.1
    with torch.inference_mode():
        want = ref(x)
        t_ta = best(lambda: ref(x), a.repeats)
        t_ours = best(lambda: ours(x), a.repeats); got = ours(x)
    rows = [("torchaudio HDemucs, torch", t_ta, float("inf")), ("dfnb HDemucs, torch", t_ours, min(snr(want[:, s], got[:, s]) for s in range(4)))]
    with tempfile.TemporaryDirectory() as d:
        for half in (False, True):
            p = export_hdemucs(ours, Path(d) / "hd.onnx", S, fp16_weights=half)
            sess = ort_session(p, threads=a.threads); feed = {"mix": x.numpy()}
            t = best(lambda: sess.run(None, feed), a.repeats); y = torch.from_numpy(sess.run(None, feed)[0])
            rows.append((f"dfnb HDemucs, ONNX Runtime{' (fp16 weights)' if half else ''}", t, min(snr(want[:, s], y[:, s]) for s in range(4))))
            sess = None  # free the session before the next export
    dur = S / 44100
    body = (f"Hybrid Demucs (`hdemucs_high`), {dur:.0f} s of stereo 44.1 kHz, {a.threads} threads, best of {a.repeats}\n\n"
            + table(("implementation", "seconds", "RTF", "speed-up vs torchaudio", "worst stem SNR vs torchaudio"),
                    [(n, f"{t:.2f}", f"{t / dur:.3f}", f"{t_ta / t:.2f}x", "reference" if s == float("inf") else f"{s:.0f} dB") for n, t, s in rows]))
    print(body)
    write_results("bench_hdemucs", body, threads=a.threads, data=[{"name": n, "seconds": t, "snr_db": s} for n, t, s in rows])

if __name__ == "__main__": main()
