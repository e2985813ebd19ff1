"""Feature front end for 60 s of 48 kHz audio: dfnb (offline torch) vs libDF (Rust, PyPI `deepfilterlib`).

Both compute what DeepFilterNet's `df_features` does: STFT analysis, ERB features (band power, dB, mean
normalisation) and complex features (unit normalisation of the first nb_df bins). Run:

    python bench/bench_stft_erb.py [--seconds 60] [--repeats 11]

Timings are the median (and min) of `repeats` runs, the two implementations interleaved so that a busy machine
slows both alike. dfnb runs once with torch.set_num_threads(1) and once with torch's default thread count.
"""
import argparse, time
import numpy as np, torch
import libdf
from dfnb.stft_erb import DfParams, DfState
from dfnb.signals import speech_like, pink_noise, mix_at_snr

def libdf_features(df, x, p):
    spec = df.analysis(x)
    fe = libdf.erb_norm(libdf.erb(spec, df.erb_widths()), p.alpha)
    fc = libdf.unit_norm(np.ascontiguousarray(spec[..., : p.nb_df]), p.alpha)
    return spec, fe, fc

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--repeats", type=int, default=11)
    args = ap.parse_args()
    p = DfParams()
    n = int(args.seconds * p.sr)
    clean = np.tile(speech_like(10.0, p.sr, seed=0), -(-n // (10 * p.sr)))[:n]
    x = mix_at_snr(clean, pink_noise(n, seed=1), 10.0)[0].astype(np.float32)[None]     # [1, N]
    xt = torch.from_numpy(x)
    df, st = libdf.DF(p.sr, p.fft_size, p.hop_size, p.nb_erb, p.min_nb_erb_freqs), DfState(p)
    default_threads = torch.get_num_threads()

    def dfnb_threads(k):
        def run():
            torch.set_num_threads(k)
            with torch.inference_mode(): st.features(xt)
        return run
    cases = {"libdf (Rust)": lambda: libdf_features(df, x, p),
             "dfnb torch, 1 thread": dfnb_threads(1),
             f"dfnb torch, {default_threads} threads (default)": dfnb_threads(default_threads)}
    for f in cases.values(): f()                                   # warm-up (caches, thread pools)
    times = {k: [] for k in cases}
    for _ in range(args.repeats):
        for k, f in cases.items():
            t0 = time.perf_counter(); f(); times[k].append(time.perf_counter() - t0)
    torch.set_num_threads(default_threads)
    ref = np.median(times["libdf (Rust)"])
    print(f"features (analysis + ERB + complex) of {args.seconds:g} s of {p.sr // 1000} kHz audio, "
          f"{x.shape[1] // p.hop_size} frames; median of {args.repeats} runs (min in brackets)")
    print(f"{'implementation':<34} {'median ms':>10} {'(min)':>8} {'x realtime':>11} {'libdf/this':>11}")
    for k, v in times.items():
        med = np.median(v)
        print(f"{k:<34} {med * 1e3:>10.1f} {np.min(v) * 1e3:>8.1f} {args.seconds / med:>11.0f} {ref / med:>11.2f}")
    print("libdf/this > 1 means dfnb is faster than libDF.")

if __name__ == "__main__":
    main()
