"""Offline real-time factor (single thread) of DeepFilterNet3: dfnb's torch model vs the official ONNX graphs in
ONNX Runtime vs the official Rust/tract runtime, on the same noisy eSpeak audio, in one run.

    .venv/bin/python bench/bench_dfnet3.py [--seconds 20] [--repeats 3]

RTF = processing time / audio duration (lower is faster); best of `--repeats` runs. "end to end" is audio in ->
audio out (features, network, synthesis, delay handling); "network" is the model call on precomputed features
(the runtime cannot be split, it is streaming hop by hop)."""
import argparse, os, platform, time
os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np, torch

def best(f, repeats):
    ts = []
    for _ in range(repeats):
        t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    return min(ts)

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.); ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(1); torch.set_num_interop_threads(1)
    from dfnb.signals import espeak, babble, mix_at_snr
    from dfnb.enhance import init_df, enhance
    from dfnb.official import OfficialRuntime, OnnxDfNet3
    sr = 48000; n = int(a.seconds * sr)
    speech = np.concatenate([espeak("The quick brown fox jumps over the lazy dog. Speech enhancement in real time.")] * 20)[:n]
    speech = np.pad(speech, (0, n - len(speech)))
    noisy, _ = mix_at_snr(speech, babble(n, sr, seed=0), 5.)
    noisy = (0.5 * noisy / np.abs(noisy).max()).astype(np.float32)

    model, df_state, _ = init_df("dfnet3")
    onnx = OnnxDfNet3(threads=1)
    rt = OfficialRuntime()
    x = torch.as_tensor(noisy)[None]
    feats = [torch.as_tensor(t) for t in df_state.features(x)]
    with torch.inference_mode():
        enhance(model, df_state, noisy); enhance(onnx, df_state, noisy)          # warm up
        t_torch = best(lambda: enhance(model, df_state, noisy), a.repeats)
        t_onnx = best(lambda: enhance(onnx, df_state, noisy), a.repeats)
        n_torch = best(lambda: model.enhance_spec(*feats), a.repeats)
        n_onnx = best(lambda: onnx.enhance_spec(*feats), a.repeats)
    def run_rt():   # a fresh stream each time, but model loading (df_create, ~0.4 s) outside the timing
        rt.reset(); t = time.perf_counter(); rt.process(noisy, reset=False); return time.perf_counter() - t
    t_rt = min(run_rt() for _ in range(a.repeats))
    t_feat = best(lambda: (df_state.features(x), df_state.synthesis(feats[0])), a.repeats)
    dur = n / sr
    print(f"DeepFilterNet3, {dur:.0f} s of noisy speech at 48 kHz, 1 thread, best of {a.repeats} "
          f"({platform.processor() or platform.machine()}, torch {torch.__version__})\n")
    print("| system | end-to-end RTF | network-only RTF | end-to-end time / official runtime |")
    print("|---|---|---|---|")
    for name, t, tn in [("dfnb DFN3 (torch)", t_torch, n_torch), ("official ONNX graphs (onnxruntime, offline)", t_onnx, n_onnx),
                        ("official runtime (Rust/tract, streaming)", t_rt, None)]:
        print(f"| {name} | {t / dur:.4f} | {'-' if tn is None else f'{tn / dur:.4f}'} | {t / t_rt:.2f}x |")
    print(f"\nfeatures + synthesis (dfnb.stft_erb, torch): RTF {t_feat / dur:.4f}")
    print(f"ratios: torch / onnxruntime = {t_torch / t_onnx:.2f} (network only {n_torch / n_onnx:.2f}); "
          f"torch / runtime = {t_torch / t_rt:.2f}; onnxruntime / runtime = {t_onnx / t_rt:.2f}")

if __name__ == "__main__": main()
