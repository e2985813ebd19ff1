"""The Whisper adapter and ASRLoss against their references: openai-whisper's own mel and encoder, mlx-whisper on the
same random weights (front end, features at every depth, gradients), on noise and speech-like signals of odd
lengths; and the errors a user meets. Skipped, with the reason, where openai-whisper or mlx-whisper is absent
(`pip install "dfnb[asr]"`).

Tolerances. Features: 1e-3 relative L2 (the issue's bound; float32 through a few hundred operations gives ~1e-6).
Mel, torch vs MLX: the two run different float32 FFTs, each accurate normwise, ||dX|| <= c u ||X|| per frame. A mel
band of power P with largest filter weight w moves by dP <= 2 sqrt(w P) ||dX|| (Cauchy-Schwarz), so the mel,
(log10 P + 4) / 4, by dP / (4 ln10 P). The allowance per cell is 1e-5 plus that bound with c u = 2 * 9 * 2^-24 for
each FFT (the a-priori bound's log2(400) ~ 9 levels of butterflies, two FFTs), evaluated on the float64 mel."""
import math
import numpy as np
import pytest
import torch

from dfnb.signals import speech_like, pink_noise, mix_at_snr
from dfnb.whisper_adapter import (resample, log_mel, mel_filters, random_whisper, torch_encode, get_whisper_backend,
                                  TorchWhisperBackend, whisper_dims)

whisper = pytest.importorskip("whisper", reason="openai-whisper is not installed (pip install 'dfnb[asr]')")


def _mlx():
    return pytest.importorskip("mlx_whisper", reason="mlx-whisper is not installed (pip install 'dfnb[asr]'; Linux: mlx[cpu])")


SIGNALS = {
    "noise": lambda n, s: np.random.default_rng(s).standard_normal(n).astype(np.float32) * 0.1,
    "speech": lambda n, s: speech_like(n / 48000, seed=s)[:n].astype(np.float32),
    "noisy speech": lambda n, s: mix_at_snr(speech_like(n / 48000, seed=s)[:n], pink_noise(n, seed=s + 1), 5)[0].astype(np.float32),
}
LENGTHS = (48000 + 1, 3 * 48000 + 479)


@pytest.fixture(scope="module")
def models():
    tm = random_whisper("tiny", seed=0)
    return tm


def test_resample_vs_scipy_odd_lengths():
    import scipy.signal as ss
    rng = np.random.default_rng(3)
    for a, b in [(48000, 16000), (44100, 16000), (8000, 16000), (32000, 48000)]:
        for n in (1, 2, 7, 1001):
            x = rng.standard_normal((3, n)); g = math.gcd(a, b)
            np.testing.assert_allclose(resample(torch.tensor(x), a, b).numpy(), ss.resample_poly(x, b // g, a // g, axis=-1), atol=1e-12)


@pytest.mark.parametrize("kind", SIGNALS)
@pytest.mark.parametrize("n", LENGTHS)
def test_mel_equals_openai_whisper(kind, n):
    x16 = resample(torch.from_numpy(SIGNALS[kind](n, 1)), 48000, 16000)
    ref = whisper.log_mel_spectrogram(x16)
    np.testing.assert_allclose(log_mel(x16).numpy(), ref.numpy(), atol=1e-5)


def _mel_allowance(x16: np.ndarray) -> np.ndarray:
    "Per-cell allowance [T, n_mels] for two float32 FFTs' normwise error (module docstring)."
    w = mel_filters(80).astype(np.float64)
    xp = np.pad(x16.astype(np.float64), 200, mode="reflect")
    n = len(x16) // 160
    frames = np.stack([xp[i * 160:i * 160 + 400] for i in range(n)]) * np.hanning(401)[:-1]
    X = np.fft.rfft(frames, axis=-1); P = w @ (np.abs(X) ** 2).T              # [n_mels, T]
    norm = np.sqrt((np.abs(frames) ** 2).sum(-1) * 400)                       # ||X|| of the full complex FFT
    dX = 2 * 2 * 9 * 2.0 ** -24 * norm                                        # both FFTs
    dP = 2 * np.sqrt(w.max(1)[:, None] * P) * dX[None] + dX[None] ** 2 * w.max(1)[:, None]
    return (1e-5 + dP / (4 * math.log(10) * np.maximum(P, 1e-10))).T


@pytest.mark.parametrize("kind", SIGNALS)
@pytest.mark.parametrize("n", LENGTHS)
def test_mel_torch_vs_mlx(kind, n, models):
    _mlx()
    from dfnb.whisper_adapter import MlxWhisperBackend, to_mlx
    x = SIGNALS[kind](n, 2)
    bt, bm = TorchWhisperBackend(models), MlxWhisperBackend(to_mlx(models))
    a, b = bt.log_mel_spectrogram(x, sr=48000).numpy().T, np.array(bm.log_mel_spectrogram(x, sr=48000))
    err, allow = np.abs(a - b), _mel_allowance(resample(torch.from_numpy(x).double(), 48000, 16000).numpy())
    assert (err <= allow).all(), f"max err {err.max():.2e}, worst err/allowance {(err / allow).max():.2f}"
    near = a >= a.max(-1, keepdims=True) - 1.0
    assert err[near].max() <= 1e-5, err[near].max()


@pytest.mark.parametrize("kind", SIGNALS)
def test_encoder_features_torch_vs_mlx_every_layer(kind, models):
    _mlx()
    import mlx.core as mx
    from dfnb.whisper_adapter import mlx_encode, to_mlx
    mm = to_mlx(models)
    x = np.stack([SIGNALS[kind](2 * 48000 + 97, s) for s in (4, 5)])
    mel = log_mel(resample(torch.from_numpy(x), 48000, 16000))
    for layer in (0, 1, 2, 3, 4, None):
        a = torch_encode(models.encoder, mel, layer).detach().numpy()
        b = np.array(mlx_encode(mm.encoder, mx.array(mel.numpy().transpose(0, 2, 1)), layer))
        assert np.linalg.norm(a - b) / np.linalg.norm(a) < 1e-3, layer


def test_full_window_equals_embed_audio(models):
    mel = log_mel(resample(torch.from_numpy(SIGNALS["noisy speech"](30 * 48000, 6)), 48000, 16000))[None]
    with torch.no_grad():
        assert torch.equal(torch_encode(models.encoder, mel), models.embed_audio(mel))


@pytest.mark.parametrize("backend", ["pytorch", "mlx"])
@pytest.mark.parametrize("distance", ["l1", "mse", "cosine"])
def test_asr_loss_gradients_agree(backend, distance, models):
    from dfnb.losses import ASRLoss
    if backend == "mlx":
        _mlx()
        from dfnb.whisper_adapter import MlxWhisperBackend, to_mlx
        be = MlxWhisperBackend(to_mlx(models))
    else:
        be = TorchWhisperBackend(models)
    clean = torch.from_numpy(np.stack([SIGNALS["speech"](48000 + 481, s) for s in (7, 8)]))
    noisy = torch.from_numpy(np.stack([SIGNALS["noisy speech"](48000 + 481, s) for s in (7, 8)]))
    ref = ASRLoss(TorchWhisperBackend(models), distance=distance, reduction="none")
    got = ASRLoss(be, distance=distance, reduction="none")
    y0, y1 = noisy.clone().requires_grad_(True), noisy.clone().requires_grad_(True)
    l0, l1 = ref(y0, clean), got(y1, clean)
    l0.sum().backward(); l1.sum().backward()
    np.testing.assert_allclose(l1.detach().numpy(), l0.detach().numpy(), rtol=1e-4)
    assert (y1.grad - y0.grad).norm() / y0.grad.norm() < 1e-3
    # per item: item b's loss has no gradient into item 1-b
    y = noisy.clone().requires_grad_(True)
    got(y, clean)[0].backward()
    assert y.grad[1].abs().max() == 0 and y.grad[0].abs().max() > 0


def test_asr_loss_channels_are_items(models):
    from dfnb.losses import ASRLoss
    loss = ASRLoss(TorchWhisperBackend(models), reduction="none")
    x = torch.from_numpy(np.stack([SIGNALS["noise"](24000, s) for s in (1, 2)])).reshape(1, 2, -1)
    per = loss(x, x * 0.5)
    assert per.shape == (1, 2)
    torch.testing.assert_close(per[0, 1], loss(x[:, 1], x[:, 1] * 0.5)[0], rtol=1e-5, atol=0)


def test_backend_from_cache_folder_and_errors(tmp_path, monkeypatch, models):
    from dataclasses import asdict
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="download=True"):
        get_whisper_backend("tiny", "pytorch")
    (tmp_path / "whisper").mkdir()
    torch.save({"dims": asdict(models.dims), "model_state_dict": models.state_dict()}, tmp_path / "whisper" / "tiny.pt")
    b = get_whisper_backend("tiny", "pytorch")
    assert b.backend_name == "pytorch" and b.dims == models.dims
    assert get_whisper_backend("tiny", "auto").backend_name in ("pytorch", "mlx")
    with pytest.raises(ValueError, match="backend must be"):
        get_whisper_backend("tiny", "coreml")
    with pytest.raises(TypeError, match="model must be"):
        get_whisper_backend(3.5, "pytorch")
    with pytest.raises(ValueError, match="unknown Whisper size"):
        whisper_dims("gigantic")
    with pytest.raises(ValueError, match="too short"):
        b.log_mel_spectrogram(np.zeros(100, np.float32))


def test_losses_module_exports_asr_loss():
    from dfnb import losses
    assert "ASRLoss" in losses.__all__
