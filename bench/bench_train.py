"""Training throughput of dfnb-train: seconds of audio per second of training (one optimiser step on a batch of
mixtures, features and loss included, data mixing excluded) for DfNet4 and DfNet4Lite, with and without the DFN3
teacher, on this machine.

    .venv/bin/python bench/bench_train.py             # batch 8 x 3 s, 1 warm-up + 3 timed steps per case
    .venv/bin/python bench/bench_train.py --quick     # batch 4 x 1 s

A teacher costs one DFN3 forward pass per batch (no backward). Data mixing (MixDataset) runs in the loader and is
timed separately (per item).
"""
import argparse, os, tempfile, time
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch
from _results import table, write_results
from dfnb.corpus import make_corpus
from dfnb.train import Trainer, TrainConfig, build_model, epoch_batches
from dfnb.dfnet3 import load_official_dfnet3


def main():
    ap = argparse.ArgumentParser(); ap.add_argument("--quick", action="store_true"); ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    bs, secs, reps = (4, 1.0, 2) if a.quick else (8, 3.0, 3)
    tmp = tempfile.mkdtemp()
    corpus = make_corpus(f"{tmp}/corpus", minutes=3.0, sources=("synth",), noise_minutes=0.2, n_rirs=4, progress=lambda m: None)
    teacher = load_official_dfnet3()
    rows, data = [], {}
    for mt in ("dfnet4lite", "dfnet4"):
        for kd in (False, True):
            torch.manual_seed(0)
            cfg = TrainConfig(batch_size=bs, batch_size_scheduling=f"0/{bs}", max_sample_len_s=secs, seed=0, p_reverb=0.1)
            t = Trainer(build_model(mt), corpus / "dataset.cfg", corpus, f"{tmp}/run_{mt}_{kd}", cfg, teacher=teacher if kd else None)
            idx = epoch_batches(len(t.train_ds), bs, 0, 0)
            t0 = time.perf_counter(); _ = [t.train_ds[i] for i in idx[0]]; t_mix = (time.perf_counter() - t0) / bs
            batches = [t.collate([t.train_ds[i] for i in b]) for b in idx[:reps + 1]]
            t.train_step(batches[0])                                                 # warm-up (Numba compiles)
            ts = [t.train_step(b)["sec"] for b in batches[1:]]
            best = min(ts); rate = bs * secs / best
            rows.append((mt, "DFN3" if kd else "-", f"{sum(p.numel() for p in t.base.parameters()) / 1e6:.2f} M",
                         f"{best:.2f}", f"{rate:.1f}", f"{t_mix * 1e3:.0f}"))
            data[f"{mt}{'_kd' if kd else ''}"] = {"step_s": best, "audio_s_per_s": rate, "mix_ms_per_item": t_mix * 1e3}
            print(rows[-1], flush=True)
    body = (f"Batch {bs} x {secs:g} s at 48 kHz, DFN3's loss (multi-resolution spectrogram + local SNR), AdamW; "
            f"best of {reps} steps.\n\n" + table(("model", "teacher", "params", "s / step", "audio s / s", "mixing ms / item"), rows))
    write_results("bench_train" + ("_quick" if a.quick else ""), body, a.threads, data)


if __name__ == "__main__": main()
