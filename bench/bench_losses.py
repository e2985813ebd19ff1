"""What training costs before the model does anything: forward + backward time of every loss and discriminator, in
ms per second of audio (batch 1, 48 kHz, single thread, best of --reps), written to bench/results/bench_losses.md.

    .venv/bin/python bench/bench_losses.py [--seconds 1] [--reps 3]

ASRLoss: Whisper encoder features (block 2) of random-weight `tiny` and `base` models (no download; the cost
does not depend on the weights), PyTorch and MLX backends, where openai-whisper / mlx-whisper are installed.

Discriminators: one generator-side pass (real features without gradients, adversarial + feature-matching loss,
backward into the fake waveform) plus one discriminator-side pass (hinge loss, backward into its weights).
"""
import argparse, os, time
os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch
torch.set_num_threads(1)
from dfnb.losses import SpectralLoss, MultiResSpecLoss, MaskLoss, LocalSnrLoss, LocalSnrTarget, SdrLoss, Loss
from dfnb.discriminators import DfNet4Discriminator, build_discriminator, AdversarialLossCalculator
from dfnb.official import official_model_dir, DfNet3Params
from dfnb.stft_erb import DfParams
from _results import table, write_results

def best(fn, reps):
    fn(); ts = []
    for _ in range(reps):
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    return min(ts)

def main(argv=None):
    ap = argparse.ArgumentParser(); ap.add_argument("--seconds", type=float, default=1.0); ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args(argv)
    torch.manual_seed(0)
    n = int(a.seconds * 48000); T = n // 480
    S = torch.randn(1, 1, T, 481, dtype=torch.complex64) * 0.01; X = S + 0.01 * torch.randn_like(S)
    wav_s, wav_y = torch.randn(1, n), torch.randn(1, n)
    rows = []
    def spec_loss(loss, *extra):
        def run():
            Y = X.clone().requires_grad_(True); loss(Y, S, *extra).backward() if not extra else loss(*extra, Y).backward()
        return run
    def wave_loss(loss):
        def run():
            y = wav_y.clone().requires_grad_(True); loss(y, wav_s).backward()
        return run
    gains = torch.rand(1, 1, T, 32)
    def mask_run():
        g = gains.clone().requires_grad_(True); MaskLoss(DfParams(), gamma=0.3)(g, S, X).backward()
    lsnr_t = LocalSnrTarget(DfNet3Params())
    def lsnr_run():
        p = torch.rand(1, T, 1, requires_grad=True); LocalSnrLoss(1e-3)(p, lsnr_t(S, X - S)).backward()
    full = Loss.from_config(official_model_dir())
    def full_run():
        Y = X.clone().requires_grad_(True); full(S, X, Y, gains, torch.rand(1, T, 1)).backward()
    losses = {"SpectralLoss (gamma 0.3, complex)": spec_loss(SpectralLoss(0.3, 1, 1)),
              "MultiResSpecLoss (256..2048, gamma 0.3, complex)": wave_loss(MultiResSpecLoss([256, 512, 1024, 2048], 0.3, 500, 500)),
              "MaskLoss (iam, gamma 0.3)": mask_run, "LocalSnrLoss + target": lsnr_run, "SdrLoss": wave_loss(SdrLoss(0.2)),
              "Loss.from_config (DFN3's config.ini)": full_run}
    for name, fn in losses.items():
        rows.append(("loss", name, "-", f"{best(fn, a.reps) * 1e3 / a.seconds:.1f}"))
    rows += asr_rows(wav_y, wav_s, a)
    discs = {"DfNet4Discriminator (64-512, 3 scales)": DfNet4Discriminator(),
             "MS-STFT (5 FFTs, 32 filters)": build_discriminator(dict(use_msd=False, use_mpd=False)),
             "MSD (scales 1, 2, 4)": build_discriminator(dict(n_ffts=[], use_mpd=False)),
             "MPD (periods 2-11, 32-1024 ch)": build_discriminator(dict(n_ffts=[], use_msd=False)),
             "MPD, quarter width (8-256 ch)": build_discriminator(dict(n_ffts=[], use_msd=False, mpd_channels=[8, 32, 128, 256, 256]))}
    calc = AdversarialLossCalculator()
    for name, d in discs.items():
        def run(d=d):
            y = wav_y.clone().requires_grad_(True)
            calc.compute_generator_loss(d, wav_s, y)["loss"].backward()
            calc.compute_discriminator_loss(d, wav_s, y)["loss"].backward()
        rows.append(("discriminator", name, f"{sum(p.numel() for p in d.parameters()):,d}", f"{best(run, a.reps) * 1e3 / a.seconds:.1f}"))
    for r in rows: print(f"{r[0]:14s} {r[1]:50s} {r[2]:>12s} {r[3]:>10s} ms per s of audio")
    write_results("bench_losses", table(("kind", "what", "parameters", "ms per s of audio (fwd+bwd)"), rows)
                  + f"\n\nBatch 1, {a.seconds:g} s at 48 kHz, single thread, best of {a.reps}.", threads=1)

def asr_rows(wav_y, wav_s, a):
    "ASRLoss forward + backward into the enhanced waveform, per backend and model size."
    import importlib.util
    if importlib.util.find_spec("whisper") is None:
        print("ASRLoss not benchmarked: openai-whisper is not installed (pip install 'dfnb[asr]')"); return []
    from dfnb.losses import ASRLoss
    from dfnb.whisper_adapter import random_whisper, TorchWhisperBackend, MlxWhisperBackend, to_mlx
    have_mlx = importlib.util.find_spec("mlx_whisper") is not None
    rows = []
    for size in ("tiny", "base"):
        m = random_whisper(size, seed=0)
        backends = {"PyTorch": TorchWhisperBackend(m), **({"MLX": MlxWhisperBackend(to_mlx(m))} if have_mlx else {})}
        for bname, be in backends.items():
            loss = ASRLoss(be, layer=2)
            def run(loss=loss):
                y = wav_y.clone().requires_grad_(True); loss(y, wav_s).backward()
            rows.append(("loss", f"ASRLoss, Whisper {size} (random weights), block 2, {bname}",
                         f"{sum(p.numel() for p in m.encoder.parameters()):,d}", f"{best(run, a.reps) * 1e3 / a.seconds:.1f}"))
    return rows

if __name__ == "__main__":
    main()
