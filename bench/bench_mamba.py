"""Benchmark of dfnb.mamba.selective_scan backends: forward and forward+backward, side by side.

    .venv/bin/python bench/bench_mamba.py            # full run (the "ref" backward on the long case takes minutes)
    .venv/bin/python bench/bench_mamba.py --quick    # "ref" timed on the first 300 frames (full width), scaled by L
    .venv/bin/python bench/bench_mamba.py --quick --targets skylake-avx512,sapphirerapids   # + Numba for other CPUs

Reports milliseconds, state updates per second (batch*d_inner*L*d_state / time) and the ratio against "ref";
the per-frame cost of the streaming step (`selective_scan_step`, `MambaBlock.step`); and a profile of the Numba
kernels (where the time goes: threads, element-wise work, exp, the inner loops on data in L1, against the
arithmetic limit). With --targets, the Numba backend is also timed compiled for other CPUs (NUMBA_CPU_NAME=<name>
in a child process: that CPU's tuning with this machine's instruction set), e.g. Intel's on an AMD machine. Every
figure is the best of --reps runs, with the slowest beside it. The CUDA section runs only where torch sees a GPU.
"""
import argparse, json, os, subprocess, sys, time
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")     # before torch loads its OpenMP runtime (see dfnb.mamba)
import numpy as np
import torch
from numba import njit
from _results import table, write_results
from dfnb import mamba as M
from dfnb.mamba import selective_scan, selective_scan_step, MambaBlock

CASES = [(8, 512, 300, 64), (1, 512, 6000, 16), (2, 384, 500, 16), (2, 384, 500, 64)]


def inputs(b, d, L, n, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)
    t = dict(u=r(b, d, L), delta=r(b, d, L) * 0.5 - 2, A=-torch.rand(d, n, generator=g) * 4 - 0.1, B=r(b, n, L),
             C=r(b, n, L), D=r(d), z=r(b, d, L), delta_bias=r(d) * 0.1)
    return {k: v.to(device) for k, v in t.items()}


def sync(device):
    if device.startswith("cuda"): torch.cuda.synchronize()


def timeit(fn, reps, device, warmup=1, all_times=False):
    "Best wall time of `reps` calls (all of them with `all_times`), after `warmup` calls."
    for _ in range(warmup): fn()
    sync(device)
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter(); fn(); sync(device); ts.append(time.perf_counter() - t0)
    return ts if all_times else min(ts)


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
            tfs = [t * scale for t in timeit(fwd, nrep, device, warmup=warm, all_times=True)]
        tbs = [t * scale for t in timeit(fwdbwd, nrep, device, warmup=warm, all_times=True)]
        rows.append((be, min(tfs), min(tbs), "*" if scale != 1 else "", tfs, tbs))
    ref = {r[0]: r for r in rows}.get("ref")
    upd = b * d * L * n
    print(f"\n(batch {b}, d_inner {d}, L {L}, d_state {n}) on {device}: {upd / 1e6:.0f} M state updates")
    print(f"{'backend':8s} {'fwd ms':>10s} {'fwd Gupd/s':>11s} {'fwd x ref':>10s} {'f+b ms':>10s} {'f+b Gupd/s':>11s} {'f+b x ref':>10s}")
    for be, tf, tb, mark, *_ in rows:
        rf = f"{ref[1] / tf:10.1f}" if ref else f"{'-':>10s}"
        rb = f"{ref[2] / tb:10.1f}" if ref else f"{'-':>10s}"
        print(f"{be + mark:8s} {tf * 1e3:10.1f} {upd / tf / 1e9:11.3f} {rf} {tb * 1e3:10.1f} {upd / tb / 1e9:11.3f} {rb}")
    return rows


def numba_only(cases, reps):
    "{case: (forward times, forward+backward times)} of the Numba backend, seconds, `reps` runs each."
    out = {}
    for case in cases:
        x = inputs(*case)
        kw = dict(delta_softplus=True, backend="numba")
        def fwdbwd():
            xs = {k: v.detach().requires_grad_() for k, v in x.items()}
            selective_scan(**xs, **kw).sum().backward()
        with torch.no_grad():
            tf = timeit(lambda: selective_scan(**x, **kw), reps, "cpu", all_times=True)
        out["x".join(map(str, case))] = (tf, timeit(fwdbwd, reps, "cpu", all_times=True))
    return out


def forced_targets(targets, reps):
    "The Numba backend compiled for each CPU in `targets` (NUMBA_CPU_NAME, in a child process): {target: numba_only}."
    res = {}
    for tgt in targets:
        env = dict(os.environ, NUMBA_CPU_NAME=tgt)
        r = subprocess.run([sys.executable, __file__, "--numba-only", "--reps", str(reps)], env=env, capture_output=True,
                           text=True, cwd=os.path.dirname(os.path.abspath(__file__)))
        if r.returncode != 0: print(f"target {tgt}: failed\n{r.stderr[-2000:]}"); continue
        res[tgt] = json.loads(r.stdout.strip().splitlines()[-1])
    return res


def g_upd(case, ts):
    "(best, slowest) G state updates/s of the times `ts` for `case`."
    b, d, L, n = case
    return b * d * L * n / min(ts) / 1e9, b * d * L * n / max(ts) / 1e9


def step_cost(reps=200):
    "Per-frame cost of the streaming step (microseconds), at the widths of CASES and for a whole MambaBlock."
    rows = []
    for b, d, _, n in CASES[:2]:
        x = inputs(b, d, 1, n)
        s = torch.zeros(b, d, n)
        args = (x["u"][..., 0], x["delta"][..., 0], x["A"], x["B"][..., 0], x["C"][..., 0], x["D"], x["z"][..., 0], x["delta_bias"])
        with torch.no_grad():
            t = timeit(lambda: selective_scan_step(s, *args, delta_softplus=True), reps, "cpu", warmup=10)
        rows.append((f"selective_scan_step b {b}, d {d}, N {n}", t))
    torch.manual_seed(0)
    blk = MambaBlock(256, d_state=16).eval()
    st, xt = blk.init_state(1), torch.randn(1, 256)
    with torch.no_grad():
        t = timeit(lambda: blk.step(xt, st), reps, "cpu", warmup=10)
    rows.append(("MambaBlock(256, d_state 16).step, batch 1", t))
    print("\nstreaming step, per frame:")
    for name, t in rows: print(f"  {name:44s} {t * 1e6:8.1f} us")
    return rows


_G, _VW, _vector_width = M._G, M._VW, M._vector_width      # (module globals: Numba reads _VW as a constant)


@njit(fastmath=M._FM)
def _exp_loop(x, acc, reps):
    "exp on 16-lane rows in L1 (each result feeds the next call, so nothing is hoisted)."
    for _ in range(reps):
        for i in range(x.shape[0]):
            acc[i] = M._vexp(x[i] + acc[i] * np.float32(1e-3))


# The two cores below copy their inputs into arrays they allocate themselves, as the kernels do: LLVM then vectorises
# the loop over the lanes unconditionally. (On arrays passed in as arguments its run-time overlap check fails here and
# the scalar fallback runs, ten times slower.)

@njit(fastmath=M._FM)
def _fwd_core(A, dt, x, Bt, Ct, reps):
    "The forward kernel's scan loop alone (16 channel lanes, N states) over one chunk's frames, on data in L1."
    _vector_width(_VW)
    N, T = A.shape[0], dt.shape[0]
    h, Ag = np.zeros((N, _G), dtype=np.float32), np.zeros((N, _G), dtype=np.float32)
    dtT, xT, acc = np.zeros((T, _G), dtype=np.float32), np.zeros((T, _G), dtype=np.float32), np.zeros(_G, dtype=np.float32)
    Ag[:], dtT[:], xT[:] = A, dt, x
    s = np.float32(0)
    for _ in range(reps):
        for i in range(T):
            Bv, Cv, dv, xv = Bt[i], Ct[i], dtT[i], xT[i]
            for g in range(_G):
                acc[g] = np.float32(0)
            for n in range(N):
                bn, cn, hn, An = Bv[n], Cv[n], h[n], Ag[n]
                for g in range(_G):
                    hv = M._vexp(dv[g] * An[g]) * hn[g] + xv[g] * bn
                    hn[g] = hv
                    acc[g] += cn * hv
            s += acc[0]
    return s


@njit(fastmath=M._FM)
def _bwd_core(A, dt, x, gy, Bt, Ct, reps):
    "The backward kernel's two passes (recompute, adjoint) over one chunk for one 16-channel group, in L1/L2."
    _vector_width(_VW)
    N, T = A.shape[0], dt.shape[0]
    S, W = np.zeros((N, 4, _G), dtype=np.float32), np.zeros((T, 5, _G), dtype=np.float32)
    TT = np.zeros((T + 1, N, 2, _G), dtype=np.float32)
    gB, gC = np.zeros((T, N), dtype=np.float32), np.zeros((T, N), dtype=np.float32)
    S[:, 2] = A
    W[:, 0], W[:, 1], W[:, 2] = dt, x, gy
    for _ in range(reps):
        for i in range(T):
            for n in range(N):
                bn = Bt[i, n]
                s = np.float32(0)
                for g in range(_G):
                    a = M._vexp(W[i, 0, g] * S[n, 2, g])
                    hv = a * S[n, 3, g] + W[i, 1, g] * bn
                    S[n, 3, g] = hv
                    TT[i + 1, n, 0, g] = a
                    TT[i + 1, n, 1, g] = hv
                    s += W[i, 2, g] * hv
                gC[i, n] += s
        for i in range(T - 1, -1, -1):
            for g in range(_G):
                W[i, 3, g] = np.float32(0)
                W[i, 4, g] = np.float32(0)
            for n in range(N):
                bn, cn = Bt[i, n], Ct[i, n]
                s = np.float32(0)
                for g in range(_G):
                    l = S[n, 0, g] + W[i, 2, g] * cn
                    a = TT[i + 1, n, 0, g]
                    qv = l * (a * TT[i, n, 1, g])
                    S[n, 1, g] += W[i, 0, g] * qv
                    W[i, 4, g] += S[n, 2, g] * qv
                    W[i, 3, g] += l * bn
                    S[n, 0, g] = l * a
                    s += l * W[i, 1, g]
                gB[i, n] += s
        S[:, 3] = 0
        S[:, 0] = 0
    return gB.sum() + gC.sum() + S[:, 1].sum() + W[:, 3:].sum()


def _rate(fn, work, reps=5):
    "work / best time, in G/s."
    fn(); return work / min(timeit(fn, 1, "cpu", warmup=0) for _ in range(reps)) / 1e9


# Vector operations per 16 state updates in the forward's inner loop (the source, op by op): exp = clamp (2), k (fma,
# floor: 2), r (2 fma), polynomial (5 fma), p r^2 + r + 1 (3), 2^k (cvt, add, shift: 3), the scale (1), the two
# selects for x < -87 and NaN (4) = 22; then dt*A (1), a*h + x*B (2), acc += C*h (1) = 26, plus 2 loads and 1 store.
_OPS_PER_16 = 26


def profile(threads):
    "Where the Numba backend's time goes, per case: G state updates/s of the pieces, and the arithmetic limit."
    rows = []
    rng = np.random.default_rng(0)
    f32 = lambda *s: rng.standard_normal(s).astype(np.float32)
    xe, acc = f32(64 * _G), np.zeros(64 * _G, np.float32)
    exp_rate = _rate(lambda: _exp_loop(xe, acc, 2000), 64 * _G * 2000)            # G exp/s, one thread
    for b, d, L, n in CASES[:2]:
        x = inputs(b, d, L, n); upd = b * d * L * n
        kw = dict(delta_softplus=True, backend="numba")
        bare = {k: x[k] for k in ("u", "delta", "A", "B", "C")}
        res = {}
        with torch.no_grad():
            for nt in (1, threads):
                torch.set_num_threads(nt)
                res[f"fwd {nt} thr"] = _rate(lambda: selective_scan(**x, **kw), upd, 3)
            res["fwd, no element-wise"] = _rate(lambda: selective_scan(**bare, backend="numba"), upd, 3)
        def fb():
            xs = {k: v.detach().requires_grad_() for k, v in x.items()}
            selective_scan(**xs, **kw).sum().backward()
        res["f+b"] = _rate(fb, upd, 3)
        res["bwd alone"] = 1 / (1 / res["f+b"] - 1 / res[f"fwd {threads} thr"])
        T = M._CHUNK
        A, dt, xx, gy = -np.abs(f32(n, _G)), np.abs(f32(T, _G)) * 0.1, f32(T, _G), f32(T, _G)
        Bc, Cc = f32(T, n), f32(T, n)
        core_f = _rate(lambda: _fwd_core(A, dt, xx, Bc, Cc, 300), 300 * T * n * _G)
        core_b = _rate(lambda: _bwd_core(A, dt, xx, gy, Bc, Cc, 100), 100 * T * n * _G)
        torch.set_num_threads(threads)
        rows.append(((b, d, L, n), res, core_f, core_b))
    print(f"\nprofile of the numba backend ({threads} threads; G state updates/s unless stated):")
    print(f"  exp alone, 16 lanes in L1, 1 thread: {exp_rate:.2f} G exp/s -> caps the scan at {exp_rate * threads:.1f} G upd/s on {threads} threads")
    print(f"  forward inner loop: {_OPS_PER_16} vector ops per 16 updates (see _OPS_PER_16)")
    for (b, d, L, n), res, cf, cb in rows:
        print(f"  case N {n} (b {b}, d {d}, L {L}): " + ", ".join(f"{k} {v:.2f}" for k, v in res.items()))
        print(f"    in L1, 1 thread: forward inner loop {cf:.2f} (x{threads} = {cf * threads:.2f}; the full forward reaches "
              f"{res[f'fwd {threads} thr'] / (cf * threads):.0%} of it), backward loops {cb:.2f} (x{threads} = {cb * threads:.2f}; "
              f"the full backward {res['bwd alone'] / (cb * threads):.0%})")
    fits = overheads(rows)
    for k, (c0, c1) in fits.items():
        print(f"  {k}: {c0:.1f} ns fixed per 16-channel group and frame + {c1:.3f} ns "
              f"per state update (fit of the two d_state values in L1, 1 thread)")
    return exp_rate, rows, fits


def overheads(rows):
    "Fit time per (program row, frame) = c0 + c1 * N to the in-L1 rates at the two d_state values: the fixed cost."
    (n1, f1, b1), (n2, f2, b2) = sorted((r[0][3], r[2], r[3]) for r in rows)[:2]
    out = {}
    for k, r1, r2, lanes in (("forward", f1, f2, _G), ("backward", b1, b2, _G)):
        t1, t2 = lanes * n1 / r1, lanes * n2 / r2                     # ns per row-frame (rates in G/s)
        c1 = (t2 - t1) / (n2 - n1)
        out[k] = (t1 - c1 * n1, c1 / lanes)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help='time "ref" on the first <= 300 frames (full batch and width), scaled by L')
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--backends", default="ref,numba,torch")
    ap.add_argument("--no-profile", action="store_true", help="skip the step cost and the kernel profile")
    ap.add_argument("--targets", default="", help="comma-separated NUMBA_CPU_NAME values to time the Numba backend for")
    ap.add_argument("--numba-only", action="store_true", help=argparse.SUPPRESS)   # the child of --targets
    a = ap.parse_args(argv)
    if a.numba_only:
        print(json.dumps(numba_only(CASES, a.reps))); return
    bes = a.backends.split(",")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads" + (" (* = ref timed on a subset, scaled)" if a.quick else ""))
    md_rows, data = [], []
    for case in CASES:
        rows = run_case(case, bes, "cpu", a.reps, a.quick)
        b, d, L, n = case; upd = b * d * L * n; ref = {r[0]: r for r in rows}.get("ref")
        data.append({"case": dict(batch=b, d_inner=d, L=L, d_state=n),
                     "rows": [dict(backend=be, fwd_s=tf, fwdbwd_s=tb, fwd_runs_s=tfs, fwdbwd_runs_s=tbs) for be, tf, tb, _, tfs, tbs in rows]})
        for i, (be, tf, tb, mark, *_) in enumerate(rows):
            md_rows.append((f"b {b}, d {d}, L {L}, N {n}" if i == 0 else "", be + ("\\*" if mark else ""), f"{tf * 1e3:.1f}",
                            f"{upd / tf / 1e9:.2f}", f"{ref[1] / tf:.1f}" if ref else "-", f"{tb * 1e3:.1f}",
                            f"{upd / tb / 1e9:.2f}", f"{ref[2] / tb:.1f}" if ref else "-"))
    body = table(("case", "backend", "fwd ms", "fwd G upd/s", "fwd × ref", "fwd+bwd ms", "fwd+bwd G upd/s", "fwd+bwd × ref"), md_rows)
    if a.quick: body += "\n\n\\* the readable loop timed on the first 300 frames at full width, scaled by L / 300."
    nt = torch.get_num_threads()
    nrow = []                                            # the Numba backend alone: best and slowest of the runs
    for c in data:
        r = {x["backend"]: x for x in c["rows"]}.get("numba")
        if r is None: continue
        case = tuple(c["case"].values())
        nrow.append(("host", f"b {case[0]}, d {case[1]}, L {case[2]}", case[3], *(f"{v[0]:.2f} ({v[1]:.2f})" for v in
                     (g_upd(case, r["fwd_runs_s"]), g_upd(case, r["fwdbwd_runs_s"])))))
    forced = forced_targets([t for t in a.targets.split(",") if t], a.reps) if "numba" in bes else {}
    for tgt, res in forced.items():
        for key, (tf, tb) in res.items():
            case = tuple(int(v) for v in key.split("x"))
            nrow.append((tgt, f"b {case[0]}, d {case[1]}, L {case[2]}", case[3], *(f"{v[0]:.2f} ({v[1]:.2f})" for v in
                         (g_upd(case, tf), g_upd(case, tb)))))
    if nrow:
        body += ("\n\n" + table(("Numba compiled for", "shape", "N", f"fwd G upd/s, {nt} thr", f"fwd+bwd G upd/s, {nt} thr"), nrow)
                 + f"\n\nBest of {a.reps} runs (slowest in brackets). \"host\": LLVM's tuning for this CPU; a named target: "
                   "`NUMBA_CPU_NAME=<target>` (that CPU's tuning, this machine's instruction set).")
        data.append({"numba_targets": {"host": {"x".join(map(str, (c["case"].values()))): [r["fwd_runs_s"], r["fwdbwd_runs_s"]]
                                                 for c in data if "case" in c for r in c["rows"] if r["backend"] == "numba"},
                                        **forced}})
    if not a.no_profile:
        steps = step_cost()
        body += "\n\n" + table(("streaming step", "µs per frame"), [(nm, f"{t * 1e6:.1f}") for nm, t in steps])
        nt = torch.get_num_threads()
        exp_rate, prof, fits = profile(nt)
        prow = [(f"N {n}", f"{r[f'fwd {nt} thr']:.2f}", f"{r['fwd 1 thr']:.2f}", f"{r['fwd, no element-wise']:.2f}",
                 f"{cf * nt:.2f}", f"{r['bwd alone']:.2f}", f"{cb * nt:.2f}") for (b, d, L, n), r, cf, cb in prof]
        body += ("\n\n" + table(("profile (G upd/s)", f"fwd, {nt} thr", "fwd, 1 thr", "fwd, bare scan", f"fwd loop in L1 ×{nt}",
                                   f"bwd alone, {nt} thr", f"bwd loops in L1 ×{nt}"), prow)
                 + f"\n\nexp alone (16 lanes, in L1): {exp_rate:.2f} G exp/s per thread; forward inner loop: {_OPS_PER_16} "
                   "vector operations per 16 state updates. Fixed cost per frame (fit c0 + c1·N to the in-L1 loops, 1 thread): "
                 + "; ".join(f"{k} {c0:.1f} ns per 16-channel group + {c1:.3f} ns per update"
                             for k, (c0, c1) in fits.items()) + ".")
        data.append({"steps": [dict(name=nm, s=t) for nm, t in steps], "exp_per_s_1thr": exp_rate,
                     "profile": [dict(d_state=c[3], **r, fwd_loop_L1_1thr=cf, bwd_loops_L1_1thr=cb) for c, r, cf, cb in prof],
                     "fixed_cost_ns": {k: dict(per_frame=c0, per_update=c1) for k, (c0, c1) in fits.items()}})
    write_results("bench_mamba", body, data=data)
    if torch.cuda.is_available():
        print(f"\nCUDA: {torch.cuda.get_device_name()}")
        for case in CASES: run_case(case, [x for x in bes if x != "numba"], "cuda", max(a.reps, 10), a.quick)
    else:
        print("\nCUDA section skipped: no GPU visible to torch.")


if __name__ == "__main__":
    main()
