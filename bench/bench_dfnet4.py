"""DFNet4 benchmark: parameters, MACs per second of audio, single-thread CPU real-time factor offline and in step mode,
for DfNet4, DfNet4Lite, each option, and dfnb's DFN3, in one run.

    .venv/bin/python bench/bench_dfnet4.py [--seconds 5] [--step-frames 200] [--rounds 4]

RTF = processing time / audio duration (10 ms per frame). Offline: `enhance_spec` on the whole signal (network + ERB
gains + deep filter), best of the rounds. Step: `enhance_step`, one 10 ms frame at a time (the streaming form with its state),
best over the rounds of the median frame time; "step fused" is the same with the fused inference step
(`DfNet4.fuse_for_inference`, `init_enhance_state(fused=True)`). All models are timed in interleaved rounds. MACs: multiply-accumulates of the linear, convolution, GRU and selective-scan layers counted with
forward hooks on one offline pass of 1 s (element-wise operations not counted). Every model is timed in its inference
form: eval mode, BatchNorm folded into the convolutions (`fold_batchnorm`; DFN3's official weights have none).
"""
import argparse, statistics, time
import numba, torch
from torch import nn
from dfnb.dfnet4 import DfNet4, DfNet4Lite
from dfnb.blocks import GroupedLinear, fold_batchnorm
from dfnb.mamba import MambaBlock
from _results import table, write_results

def count_macs(model, run) -> int:
    "MACs of one call of `run()`, from forward hooks on the layers that do the multiplications."
    total = [0]
    def hook(mod, inp, out):
        x, y = inp[0], out[0] if isinstance(out, tuple) else out
        if isinstance(mod, nn.Linear): total[0] += y.numel() * mod.in_features
        elif isinstance(mod, GroupedLinear): total[0] += y.numel() * mod.ws
        elif isinstance(mod, (nn.Conv1d, nn.Conv2d)):
            total[0] += y.numel() * (mod.in_channels // mod.groups) * int(torch.tensor(mod.kernel_size).prod())
        elif isinstance(mod, nn.ConvTranspose2d):
            total[0] += x.numel() * (mod.out_channels // mod.groups) * int(torch.tensor(mod.kernel_size).prod())
        elif isinstance(mod, nn.GRU):
            B, T = (x.shape[0], x.shape[1]) if mod.batch_first else (x.shape[1], x.shape[0])
            for l in range(mod.num_layers):
                i = mod.input_size if l == 0 else mod.hidden_size
                total[0] += B * T * 3 * mod.hidden_size * (i + mod.hidden_size)
        elif isinstance(mod, MambaBlock):   # scan: h = exp(dt A) h + dt B u ; y = C h  (3 MACs per state element)
            total[0] += x.shape[0] * x.shape[1] * mod.d_inner * mod.d_state * 3
    kinds = (nn.Linear, GroupedLinear, nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d, nn.GRU, MambaBlock)
    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, kinds)]
    try:
        with torch.inference_mode(): run()
    finally:
        for h in hs: h.remove()
    return total[0]

def inputs(T, F=481, E=32, Fdf=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    spec = torch.randn(1, T, F, dtype=torch.cfloat, generator=g)
    return spec, torch.randn(1, T, E, generator=g), 0.3 * spec[..., :Fdf] / spec[..., :Fdf].abs().clamp_min(1e-3)

def offline_time(model, x):
    with torch.inference_mode():
        t = time.perf_counter(); model.enhance_spec(*x); return time.perf_counter() - t

def step_time(model, x, state):
    "Median seconds per `enhance_step` frame over the frames of `x`; returns (median, new state)."
    times = []
    with torch.inference_mode():
        for t in range(x[0].shape[1]):
            t0 = time.perf_counter(); _, _, state = model.enhance_step(*(a[:, t] for a in x), state)
            times.append(time.perf_counter() - t0)
    return statistics.median(times), state

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="audio length for the offline RTF")
    ap.add_argument("--step-frames", type=int, default=200, help="frames timed in step mode")
    ap.add_argument("--rounds", type=int, default=4, help="interleaved timing rounds")
    a = ap.parse_args(argv)
    torch.set_num_threads(1); numba.set_num_threads(1)
    torch.manual_seed(0)
    models = [("DfNet4", lambda: DfNet4()), ("DfNet4Lite", lambda: DfNet4Lite()),
              ("DfNet4 +hybrid_encoder", lambda: DfNet4(hybrid_encoder=True)),
              ("DfNet4 +multi_res_df", lambda: DfNet4(multi_res_df=True)),
              ("DfNet4 +adaptive_df_order", lambda: DfNet4(adaptive_df_order=True)),
              ("DfNet4Lite +all three", lambda: DfNet4Lite(hybrid_encoder=True, multi_res_df=True, adaptive_df_order=True))]
    try:
        from dfnb.dfnet3 import load_official_dfnet3
        models.append(("DFN3 (dfnb, official weights)", load_official_dfnet3))
    except Exception as e:  # dfnb.dfnet3 missing or weights not loadable
        print(f"(DFN3 skipped: {e})")
    T_off = int(round(a.seconds * 100))
    print(f"single thread (torch {torch.get_num_threads()}, numba {numba.get_num_threads()}), offline on {a.seconds:g} s "
          f"(best of {a.rounds} interleaved rounds), step on {a.rounds} x {a.step_frames // a.rounds} frames (best median)\n")
    built, n_par = [], {}
    for name, make in models:
        m = make().eval(); n_par[name] = sum(p.numel() for p in m.parameters())   # as trained (BatchNorm included)
        built.append((name, fold_batchnorm(m)))                                   # inference form (DFN3's ONNX weights come folded)
    x_off, x_step, x_mac = inputs(T_off), inputs(a.step_frames // a.rounds), inputs(100)
    off = {n: float("inf") for n, _ in built}; step = {n: float("inf") for n, _ in built}
    states = {n: m.init_enhance_state(1) for n, m in built if hasattr(m, "enhance_step")}
    fstates = {n: (m.fuse_for_inference(), m.init_enhance_state(1, fused=True))[1] for n, m in built if hasattr(m, "fuse_for_inference")}
    fstep = {n: float("inf") for n in fstates}
    for n, m in built:                      # warm-up (JIT, oneDNN primitive caches)
        offline_time(m, inputs(50))
        if n in states: _, states[n] = step_time(m, inputs(10), states[n])
        if n in fstates: _, fstates[n] = step_time(m, inputs(10), fstates[n])
    for _ in range(a.rounds):               # interleaved, so load changes on a shared machine hit all models alike
        for n, m in built:
            off[n] = min(off[n], offline_time(m, x_off) / (T_off * 0.01))
            if n in states:
                s, states[n] = step_time(m, x_step, states[n]); step[n] = min(step[n], s / 0.01)
            if n in fstates:
                s, fstates[n] = step_time(m, x_step, fstates[n]); fstep[n] = min(fstep[n], s / 0.01)
    hdr = f"{'model':32s}{'params':>11s}{'GMAC/s':>9s}{'RTF offline':>13s}{'RTF step':>10s}{'step fused':>12s}"
    print(hdr); print("-" * len(hdr))
    rows = []
    for n, m in built:
        macs = count_macs(m, lambda: m.enhance_spec(*x_mac))
        st = step[n] if n in states else None
        rows.append((n, n_par[n], macs, off[n], st))
        fs_ = f"{fstep[n]:.4f}" if n in fstep else "n/a"
        print(f"{n:32s}{rows[-1][1]:>11,d}{macs / 1e9:>9.3f}{off[n]:>13.4f}{(f'{st:.4f}' if st else 'n/a'):>10s}{fs_:>12s}", flush=True)
    r = {row[0]: row for row in rows}
    write_results("bench_dfnet4", table(("model", "params", "GMAC/s", "RTF offline", "RTF step", "RTF step, fused"),
        [(n, f"{p:,d}", f"{mac / 1e9:.3f}", f"{o:.4f}", f"{st:.4f}" if st else "n/a", f"{fstep[n]:.4f}" if n in fstep else "n/a")
         for n, p, mac, o, st in rows]) + "\n\nRTF = processing time / audio time; step = `enhance_step`, one 10 ms frame per call.", threads=1)
    print("\nratios")
    print(f"  DfNet4 offline RTF vs the migration guide's 0.40: {r['DfNet4'][3] / 0.40:.3f}x   (goal <= 0.10: {'ok' if r['DfNet4'][3] <= 0.10 else 'MISSED'})")
    print(f"  DfNet4Lite offline RTF vs the migration guide's 0.22: {r['DfNet4Lite'][3] / 0.22:.3f}x   (goal <= 0.05: {'ok' if r['DfNet4Lite'][3] <= 0.05 else 'MISSED'})")
    for name, n, macs, off, step in rows[2:5]:
        print(f"  {name}: {n - r['DfNet4'][1]:+,d} params, offline time x{off / r['DfNet4'][3]:.2f}, step time x{step / r['DfNet4'][4]:.2f}")
    d3 = [row for row in rows if row[0].startswith("DFN3")]
    if d3:
        print(f"  DfNet4 / DFN3 offline time: {r['DfNet4'][3] / d3[0][3]:.2f}x; DfNet4Lite / DFN3: {r['DfNet4Lite'][3] / d3[0][3]:.2f}x;"
              f" MACs DfNet4 / DFN3: {r['DfNet4'][2] / d3[0][2]:.2f}x")
    return rows

if __name__ == "__main__":
    main()
