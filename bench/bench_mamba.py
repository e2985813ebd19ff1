"""Benchmark of dfnb.mamba.selective_scan backends: forward and forward+backward, side by side.

    .venv/bin/python bench/bench_mamba.py            # full run (the "ref" backward on the long case takes minutes)
    .venv/bin/python bench/bench_mamba.py --quick    # "ref" timed on the first 300 frames (full width), scaled by L

Reports milliseconds, state updates per second (batch*d_inner*L*d_state / time) and the ratio against "ref".
The CUDA section runs only where torch sees a GPU.
"""
import argparse, os, time
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")     # before torch loads its OpenMP runtime (see dfnb.mamba)
import torch
from _results import table, write_results
from dfnb.mamba import selective_scan

CASES = [(8, 512, 300, 64), (1, 512, 6000, 16)]


def inputs(b, d, L, n, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)
    t = dict(u=r(b, d, L), delta=r(b, d, L) * 0.5 - 2, A=-torch.rand(d, n, generator=g) * 4 - 0.1, B=r(b, n, L),
             C=r(b, n, L), D=r(d), z=r(b, d, L), delta_bias=r(d) * 0.1)
    return {k: v.to(device) for k, v in t.items()}


def sync(device):
    if device.startswith("cuda"): torch.cuda.synchronize()


def timeit(fn, reps, device, warmup=1):
    for _ in range(warmup): fn()
    sync(device)
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter(); fn(); sync(device); ts.append(time.perf_counter() - t0)
    return min(ts)


def run_case(case, backends, device, reps, quick):
    b, d, L, n = case
    full = inputs(b, d, L, n, device)
    rows = []
    for be in backends:
        # "ref" is a Python loop over frames doing the same work at every frame, so its cost is linear in L:
        # with --quick it is timed on the first 300 frames at full batch and width, then scaled by L / 300.
        # (Scaling in d_inner too would overstate its cost: its per-frame time is partly fixed Python overhead.)
        Lb, db = (min(L, 300), d) if (quick and be == "ref") else (L, d)
        x = {k: (v[:, :db, :Lb].contiguous() if k in ("u", "delta", "z") else v[..., :Lb].contiguous() if k in ("B", "C")
                 else v[:db].contiguous()) for k, v in full.items()}
        scale = (L * d) / (Lb * db)
        kw = dict(delta_softplus=True, backend=be)
        fwd = lambda: selective_scan(**x, **kw)
        def fwdbwd():
            xs = {k: v.detach().requires_grad_() for k, v in x.items()}
            selective_scan(**xs, **kw).sum().backward()
        slow = be == "ref" or (be == "torch" and device == "cpu")    # seconds per call: one timed run, no warm-up
        nrep, warm = (1, 0) if slow else (reps, 1)
        with torch.no_grad():
            tf = timeit(fwd, nrep, device, warmup=warm) * scale
        tb = timeit(fwdbwd, nrep, device, warmup=warm) * scale
        rows.append((be, tf, tb, "*" if scale != 1 else ""))
    ref = {r[0]: r for r in rows}.get("ref")
    upd = b * d * L * n
    print(f"\n(batch {b}, d_inner {d}, L {L}, d_state {n}) on {device}: {upd / 1e6:.0f} M state updates")
    print(f"{'backend':8s} {'fwd ms':>10s} {'fwd Gupd/s':>11s} {'fwd x ref':>10s} {'f+b ms':>10s} {'f+b Gupd/s':>11s} {'f+b x ref':>10s}")
    for be, tf, tb, mark in rows:
        rf = f"{ref[1] / tf:10.1f}" if ref else f"{'-':>10s}"
        rb = f"{ref[2] / tb:10.1f}" if ref else f"{'-':>10s}"
        print(f"{be + mark:8s} {tf * 1e3:10.1f} {upd / tf / 1e9:11.3f} {rf} {tb * 1e3:10.1f} {upd / tb / 1e9:11.3f} {rb}")
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help='time "ref" on the first <= 300 frames (full batch and width), scaled by L')
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--backends", default="ref,numba,torch")
    a = ap.parse_args(argv)
    bes = a.backends.split(",")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads" + (" (* = ref timed on a subset, scaled)" if a.quick else ""))
    md_rows, data = [], []
    for case in CASES:
        rows = run_case(case, bes, "cpu", a.reps, a.quick)
        b, d, L, n = case; upd = b * d * L * n; ref = {r[0]: r for r in rows}.get("ref")
        data.append({"case": dict(batch=b, d_inner=d, L=L, d_state=n), "rows": [dict(backend=be, fwd_s=tf, fwdbwd_s=tb) for be, tf, tb, _ in rows]})
        for i, (be, tf, tb, mark) in enumerate(rows):
            md_rows.append((f"b {b}, d {d}, L {L}, N {n}" if i == 0 else "", be + ("\\*" if mark else ""), f"{tf * 1e3:.1f}",
                            f"{upd / tf / 1e9:.2f}", f"{ref[1] / tf:.1f}" if ref else "-", f"{tb * 1e3:.1f}",
                            f"{upd / tb / 1e9:.2f}", f"{ref[2] / tb:.1f}" if ref else "-"))
    write_results("bench_mamba", table(("case", "backend", "fwd ms", "fwd G upd/s", "fwd × ref", "fwd+bwd ms", "fwd+bwd G upd/s", "fwd+bwd × ref"), md_rows)
                  + ("\n\n\\* the readable loop timed on the first 300 frames at full width, scaled by L / 300." if a.quick else ""), data=data)
    if torch.cuda.is_available():
        print(f"\nCUDA: {torch.cuda.get_device_name()}")
        for case in CASES: run_case(case, [x for x in bes if x != "numba"], "cuda", max(a.reps, 10), a.quick)
    else:
        print("\nCUDA section skipped: no GPU visible to torch.")


if __name__ == "__main__":
    main()
