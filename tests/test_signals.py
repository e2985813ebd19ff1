"dfnb.signals: determinism by seed, levels, bad input."
import subprocess, sys
import numpy as np, pytest, torch
from dfnb.signals import *

def test_espeak_pure_across_processes():
    "The same call gives the same samples in this process and in a fresh one (eSpeak runs in a child process)."
    a = espeak("Deterministic speech.", sr=16000, voice="en+f3", pitch=60)
    code = ("import numpy as np, sys; from dfnb.signals import espeak; "
            "espeak('warm up the synthesiser first.'); "
            "sys.stdout.buffer.write(espeak('Deterministic speech.', sr=16000, voice='en+f3', pitch=60).tobytes())")
    b = np.frombuffer(subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout, np.float32)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and 0.05 < np.abs(a).max() <= 1

@pytest.mark.parametrize("f", [white_noise, pink_noise, brown_noise])
def test_colored_noise_seeded(f):
    a, b, c = f(9999, seed=1), f(9999, seed=1), f(9999, seed=2)
    np.testing.assert_array_equal(a, b); assert not np.array_equal(a, c)
    assert a.dtype == np.float32 and a.shape == (9999,)
    assert abs(np.sqrt(np.mean(a.astype(np.float64) ** 2)) - 0.1) < 1e-4

def test_spectral_slopes():
    "Octave-band power slope: white +3 dB/oct, pink 0, brown -3 dB/oct (250 Hz..8 kHz)."
    n, sr = 4 * 48000, 48000
    f = np.fft.rfftfreq(n, 1 / sr); los = 250 * 2 ** np.arange(5)
    for fn, slope in [(white_noise, 3), (pink_noise, 0), (brown_noise, -3)]:
        P = np.abs(np.fft.rfft(fn(n, seed=0))) ** 2
        db = [10 * np.log10(P[(f >= lo) & (f < 2 * lo)].sum()) for lo in los]
        assert abs(np.polyfit(np.arange(5), db, 1)[0] - slope) < 1.0, (fn.__name__, db)

def test_hum_bursts_babble():
    sr = 16000
    h = hum(sr, sr, f0=60., seed=0)
    P = np.abs(np.fft.rfft(h)) ** 2; assert np.argmax(P) == 60
    b = bursts(2 * sr, sr, seed=4)
    frames = b[: 2 * sr // 160 * 160].reshape(-1, 160).std(1)
    assert frames.max() / np.median(frames) > 5      # non-stationary
    np.testing.assert_array_equal(babble(sr, sr, seed=5, n_voices=2), babble(sr, sr, seed=5, n_voices=2))

def test_speech_like_and_chirp():
    x = speech_like(1.5, sr=16000, seed=3)
    assert x.shape == (24000,) and x.dtype == np.float32
    np.testing.assert_array_equal(x, speech_like(1.5, sr=16000, seed=3))
    c = chirp(1.0, 16000, 100., 7000.)
    assert c.shape == (16000,) and c.dtype == np.float32

@pytest.mark.parametrize("snr", [-5.0, 0.0, 10.0, 30.0])
def test_mix_at_snr(snr):
    s, v = speech_like(1.0, 16000, seed=0), white_noise(8000, seed=1)   # noise shorter: tiled
    noisy, sv = mix_at_snr(s, v, snr)
    assert noisy.shape == s.shape == sv.shape
    got = 10 * np.log10(np.mean(s.astype(np.float64) ** 2) / np.mean(sv.astype(np.float64) ** 2))
    assert abs(got - snr) < 1e-3
    nt, svt = mix_at_snr(torch.from_numpy(s), torch.from_numpy(white_noise(16000, seed=1)), snr)
    assert isinstance(nt, torch.Tensor) and nt.shape == (16000,)

def test_bad_input():
    with pytest.raises(ValueError, match="text"): espeak("   ")
    with pytest.raises(ValueError, match="sr"): espeak("hi", sr=0)
    with pytest.raises(ValueError, match="pitch"): espeak("hi", pitch=200)
    with pytest.raises(RuntimeError, match="voice"): espeak("hi", voice="xx-nope")
    with pytest.raises(ValueError, match="n:"): pink_noise(-3)
    with pytest.raises(ValueError, match="n_voices"): babble(100, 16000, n_voices=0)
    with pytest.raises(ValueError, match="duration"): speech_like(-1.)
    with pytest.raises(ValueError, match="silent"): mix_at_snr(np.ones(8, np.float32), np.zeros(8, np.float32), 0.)
    with pytest.raises(ValueError, match="snr_db"): mix_at_snr(np.ones(8, np.float32), np.ones(8, np.float32), float("nan"))
    with pytest.raises(ValueError, match="non-empty"): mix_at_snr(np.ones(8, np.float32), np.ones(0, np.float32), 0.)
