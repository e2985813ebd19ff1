"""The shipped DfNet4Lite against the official DeepFilterNet3 and the noisy input: PESQ, STOI and SI-SDR per SNR on
(a) the `dfnb-evaluate` set (eSpeak NG voices and sentences that training never saw) and (b) a speech family held out
of training (the Piper voice of the corpus's test split), each mixed in the six noise families at five SNRs.

    .venv/bin/python bench/eval_dfnet4lite.py [--model dfnet4lite] [--corpus runs/corpus] [--n-utt 2]

Writes bench/results/eval_dfnet4lite.md (the tables) and .json (the per-item rows).
"""
import argparse, os
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
from pathlib import Path
import torch
from _results import write_results
from dfnb.enhance import init_df, enhance
from dfnb.evaluate import make_eval_set, evaluate, summary_table, delta
from dfnb.data import Hdf5Clips


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="dfnet4lite"); ap.add_argument("--corpus", type=Path, default=Path("runs/corpus"))
    ap.add_argument("--n-utt", type=int, default=2); ap.add_argument("--held-out", default="piper")
    a = ap.parse_args()
    torch.set_num_threads(2)
    models = {"DFN3": init_df("dfnet3"), "DfNet4Lite": init_df(a.model)}
    systems = {k: (lambda m, st: lambda x: enhance(m, st, x))(m, st) for k, (m, st, _) in models.items()}
    sets = {"dfnb-evaluate set (eSpeak NG, unseen voices and sentences)": None}
    held = a.corpus / f"speech_{a.held_out}_test.hdf5"
    if held.is_file(): sets[f"held-out speech family: {a.held_out} (never in training)"] = held
    else: print(f"no {held}: the held-out evaluation is skipped")
    body, data = [], {}
    for title, speech in sets.items():
        items = make_eval_set(seed=0, n_utt=a.n_utt, speech=None if speech is None else Hdf5Clips(speech))
        rows = evaluate(items, systems, progress=False)
        g3, g4 = delta(rows, "DFN3", "noisy")[0], delta(rows, "DfNet4Lite", "noisy")[0]
        body += [f"### {title}", f"{len(items)} utterances. PESQ gain over noisy: DFN3 {g3:+.3f}, DfNet4Lite {g4:+.3f} "
                 f"(**{100 * g4 / g3:.0f} %** of DFN3's).", "", summary_table(rows), ""]
        data[title] = {"pesq_gain_dfn3": g3, "pesq_gain_dfnet4lite": g4, "rows": rows}
        print("\n".join(body[-5:]), flush=True)
    write_results("eval_dfnet4lite", "\n".join(body), 2, data)


if __name__ == "__main__": main()
