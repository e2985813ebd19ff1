"""Training throughput of dfnb-train, old against new in one run: seconds of audio per second of training (one
optimiser step on a batch of mixtures, features, teacher and loss included, data mixing excluded) for DfNet4 and
DfNet4Lite, with and without the DFN3 teacher, for the trainer at a baseline commit and for this working tree.

    python bench/bench_train.py                         # batch 8 x 3 s, baseline ff0b103 (before the fast path)
    python bench/bench_train.py --quick                 # batch 4 x 1 s
    python bench/bench_train.py --baseline none         # this tree only

Each (model, teacher, trainer) runs in its own process (the baseline from `git archive` of its commit, so both
trainers are the code a user had), old and new alternating, `--rounds` times; a process warms up one step (Numba
compiles, ONNX Runtime loads) and times `--reps` more; the table keeps the best step of all rounds. The machine's
load is printed with the results: compare the ratio, measured in one run, not absolute figures across machines.
"""
import argparse, json, os, subprocess, sys, tempfile, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BASELINE = "ff0b103"          # the last commit before issue 21 (today's trainer when the fast path was written)


def worker(a):
    "Time one trainer in this process: prints one JSON line."
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch
    torch.set_num_threads(a.threads)
    from dfnb.train import Trainer, TrainConfig, build_model, epoch_batches
    import dfnb.train as tr
    teacher = None
    if a.kd:
        if hasattr(tr, "_teacher") and "backend" in tr._teacher.__code__.co_varnames: teacher = tr._teacher("dfnet3", "auto", "cpu")
        else:
            from dfnb.dfnet3 import load_official_dfnet3
            teacher = load_official_dfnet3()
    torch.manual_seed(0)
    cfg = TrainConfig(batch_size=a.bs, batch_size_scheduling=f"0/{a.bs}", max_sample_len_s=a.secs, seed=0, p_reverb=0.1)
    t = Trainer(build_model(a.model), Path(a.corpus) / "dataset.cfg", a.corpus, tempfile.mkdtemp(), cfg, teacher=teacher)
    idx = epoch_batches(len(t.train_ds), a.bs, 0, 0)
    t0 = time.perf_counter(); _ = [t.train_ds[i] for i in idx[0]]; t_mix = (time.perf_counter() - t0) / a.bs
    batches = [t.collate([t.train_ds[i] for i in b]) for b in idx[:a.reps + 1]]
    t.train_step(batches[0])                                                 # warm-up
    ts = [t.train_step(b)["sec"] for b in batches[1:]]
    print(json.dumps({"steps": ts, "mix_ms": t_mix * 1e3, "params": sum(p.numel() for p in t.base.parameters()),
                      "path": getattr(t, "path", None)}))


def run_worker(a, impl: str, src: Path | None, model: str, kd: bool) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src) if src else os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, __file__, "--worker", "--model", model, "--corpus", str(a.corpus), "--bs", str(a.bs),
           "--secs", str(a.secs), "--reps", str(a.reps), "--threads", str(a.threads)] + (["--kd"] if kd else [])
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tempfile.gettempdir())
    if r.returncode: raise RuntimeError(f"{impl} {model} kd={kd} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true"); ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--baseline", default=BASELINE, help="git commit of the old trainer, or 'none'")
    ap.add_argument("--rounds", type=int, default=2); ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--models", default="dfnet4lite,dfnet4")
    ap.add_argument("--worker", action="store_true"); ap.add_argument("--model"); ap.add_argument("--kd", action="store_true")
    ap.add_argument("--corpus"); ap.add_argument("--bs", type=int); ap.add_argument("--secs", type=float)
    a = ap.parse_args()
    if a.worker: return worker(a)
    a.bs, a.secs = (4, 1.0) if a.quick else (8, 3.0)
    tmp = Path(tempfile.mkdtemp())
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from dfnb.corpus import make_corpus
    a.corpus = make_corpus(tmp / "corpus", minutes=3.0, sources=("synth",), noise_minutes=0.2, n_rirs=4, progress=lambda m: None)
    impls = [("new", None)]
    if a.baseline != "none":
        old = tmp / "old"; old.mkdir()
        arch = subprocess.run(["git", "archive", a.baseline, "dfnb"], cwd=HERE.parent, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(old)], input=arch, check=True)
        impls = [(f"old ({a.baseline})", old), ("new", None)]
    cases = [(m, kd) for m in a.models.split(",") for kd in (False, True)]
    best, info = {}, {}
    for r in range(a.rounds):
        for m, kd in cases:
            for name, src in impls:
                res = run_worker(a, name, src, m, kd)
                k = (m, kd, name); best[k] = min(best.get(k, float("inf")), min(res["steps"])); info[k] = res
                print(f"round {r}: {m:10s} {'DFN3' if kd else '-':4s} {name:16s} {min(res['steps']):.3f} s/step  {res['path'] or ''}", flush=True)
    from _results import table, write_results
    rows, data = [], {}
    for m, kd in cases:
        n = best[(m, kd, "new")]; rate_n = a.bs * a.secs / n
        row = [m, "DFN3" if kd else "-", f"{info[(m, kd, 'new')]['params'] / 1e6:.2f} M"]
        d = {"new_step_s": n, "new_audio_s_per_s": rate_n, "mix_ms_per_item": info[(m, kd, "new")]["mix_ms"]}
        if len(impls) == 2:
            o = best[(m, kd, impls[0][0])]; rate_o = a.bs * a.secs / o
            row += [f"{o:.2f}", f"{rate_o:.1f}"]; d |= {"old_step_s": o, "old_audio_s_per_s": rate_o, "speedup": o / n}
        row += [f"{n:.2f}", f"{rate_n:.1f}"] + ([f"**{best[(m, kd, impls[0][0])] / n:.2f}x**"] if len(impls) == 2 else [])
        rows.append(row); data[f"{m}{'_kd' if kd else ''}"] = d
    hdr = ["model", "teacher", "params"] + (["old s / step", "old audio s / s"] if len(impls) == 2 else []) + \
          ["new s / step", "new audio s / s"] + (["speed-up"] if len(impls) == 2 else [])
    path = info[(cases[0][0], True, "new")]["path"] if (cases[0][0], True, "new") in info else None
    body = (f"Batch {a.bs} x {a.secs:g} s at 48 kHz, DFN3's loss (multi-resolution spectrogram + local SNR), AdamW; "
            f"best step of {a.rounds} processes x {a.reps} steps per trainer, old and new alternating"
            + (f"; old = `git archive {a.baseline}`" if len(impls) == 2 else "")
            + (f"; new path: {', '.join(f'{k} {v}' for k, v in path.items() if v is not None)}" if path else "")
            + ".\n\n" + table(hdr, rows))
    write_results("bench_train" + ("_quick" if a.quick else ""), body, a.threads, data)


if __name__ == "__main__": main()
