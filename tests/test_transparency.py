"""Transparency and level equivariance of every shipped model on clean full-band speech (issue 22).

A model given clean speech should give it back: SI-SDR >= 25 dB and every band's gain (output/input energy) within
+-1 dB up to 20 kHz, at -45/-35/-25/-10 dBFS; at 20 dB SNR the output SI-SDR is never below the input's; and the
output scales with the input: 20 log10 ||y(a x)/a - y(x)|| / ||y(x)|| below -30 dB for a = 3 and 0.1 (after 4 s).

`GOALS` are those targets. `FLOORS[model][signal]` are measured floors: a model between its floor and the goal is an
xfail whose reason prints the measured value, the goal and the floor; below its floor it fails (a regression); with no
floor set, a miss is an xfail that prints the measured value and the goal. Signals: 'synthetic' (a voiced full-band
fixture made here: harmonics to 20 kHz under a formant and syllable envelope, band-limited at 20 kHz, so it runs
everywhere) and 'real' (held-out klettres voices from runs/corpus_real, or from the klettres-data Debian package;
skipped when neither is present). The measurements are bench/eval_real.py's, so the bench and these tests agree.
"""
import functools, importlib.util, os
from pathlib import Path
import numpy as np, pytest, scipy.signal as sps

ROOT = Path(__file__).resolve().parents[1]
CORPUS_REAL = Path(os.environ.get("DFNB_CORPUS_REAL", ROOT / "runs" / "corpus_real"))
KLETTRES_DEB = Path(os.environ.get("DFNB_KLETTRES", "/usr/share/klettres"))   # the klettres-data package
SR = 48000

GOALS = dict(si_sdr_db=25.0, band_gain_db=1.0, snr20_margin_db=0.0, equivariance_db=-30.0)
HIGHER_IS_BETTER = dict(si_sdr_db=True, band_gain_db=False, snr20_margin_db=True, equivariance_db=False)
# Measured floors per model and signal (None or missing: no floor, a miss is an xfail). DFN3 (official weights) does not
# meet every goal either, so it runs under the same rule, its floors its measured values with a margin (they guard the
# port). Measured 2026-12-06, DFN3: synthetic SI-SDR min 29.3 dB (-45 dBFS), worst band -3.81 dB (16-20k at -10 dBFS),
# 20 dB rule +7.6 dB, equivariance -48.8/-38.0 dB; real (corpus klettres en, 20 kHz) SI-SDR min 18.0 dB (-45 dBFS), worst
# band -20.5 dB (12-16k), 20 dB rule +3.7 dB, equivariance -36.1/-35.1 dB (the Debian klettres en voice: 19.7 dB, -26.2 dB).
# Set the dfnb models' floors from this file's xfail reasons or bench/results/eval_real.md.
FLOORS = {
    "dfnet3": {"synthetic": dict(si_sdr_db=22.0, band_gain_db=5.0, snr20_margin_db=0.0, equivariance_db=-30.0),
               "real": dict(si_sdr_db=15.0, band_gain_db=30.0, snr20_margin_db=0.0, equivariance_db=-27.0)},
    # The models shipped with issue 22 (DfNet4Lite 1569 + earlier steps, DfNet4 1000 steps), measured 2026-12-06 on an AMD
    # EPYC: Lite synthetic 17.1 dB / 28.5 dB / -1.9 dB / -28.9, -18.3 dB; real 8.4 / 14.7 / -4.0 / -12.0, -17.2;
    # DfNet4 synthetic 18.5 / 15.4 / -1.05 / -36.0, -18.6; real 15.6 / 15.9 / -5.0 / -27.3, -22.9. Floors: those, less
    # 3 dB (a regression guard, not a goal: every one of them misses the goal, see bench/results/eval_real.md).
    "dfnet4lite": {"synthetic": dict(si_sdr_db=14.0, band_gain_db=31.5, snr20_margin_db=-5.0, equivariance_db=-15.0),
                   # real: the corpus's klettres clips gave 8.4 / 14.7 / -4.0; the Debian package's en clips (used where
                   # runs/corpus_real is absent) give -2.0 dB at -10 dBFS / 22.6 / -7.4: the floors cover both
                   "real": dict(si_sdr_db=-5.0, band_gain_db=25.5, snr20_margin_db=-10.5, equivariance_db=-9.0)},
    "dfnet4": {"synthetic": dict(si_sdr_db=15.0, band_gain_db=18.5, snr20_margin_db=-4.0, equivariance_db=-15.0),
               # real: corpus clips 15.6 / 15.9 / -5.0; the Debian en clips 12.3 / 18.9 / -7.8: the floors cover both
               "real": dict(si_sdr_db=9.0, band_gain_db=22.0, snr20_margin_db=-11.0, equivariance_db=-19.0)},
}
MODELS = ("dfnet3", "dfnet4lite", "dfnet4")


def _bench():
    "bench/eval_real.py as a module (its measurement helpers)."
    spec = importlib.util.spec_from_file_location("dfnb_bench_eval_real", ROOT / "bench" / "eval_real.py")
    m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
    return m

E = _bench()


def fullband_voice(duration: float = 6.0, sr: int = SR, seed: int = 0, top_hz: float = 20000.) -> np.ndarray:
    """A voiced full-band talker: syllables of 150-320 ms with a gliding f0 of 95-210 Hz, every harmonic up to `top_hz`
    (amplitude 1/k, random phases) plus three formant resonances, a sine-power syllable envelope and pauses; then
    low-passed at `top_hz` (12th-order Butterworth, zero phase). RMS 0.1 (-20 dBFS)."""
    from dfnb.signals import _resonator, _VOWELS
    rng = np.random.default_rng(seed); n = int(round(duration * sr)); out = np.zeros(n); t0 = int(0.05 * sr)
    while t0 < n:
        syl = int(rng.uniform(0.15, 0.32) * sr); m = min(syl, n - t0)
        f0 = rng.uniform(95, 210) * (1 + rng.uniform(-0.12, 0.12) * np.arange(m) / max(m - 1, 1))
        ph = 2 * np.pi * np.cumsum(f0) / sr; src = np.zeros(m)
        for k in range(1, int(top_hz / f0.max()) + 1): src += np.sin(k * ph + rng.uniform(0, 2 * np.pi)) / k
        vowel = _VOWELS[rng.integers(len(_VOWELS))] * rng.uniform(0.9, 1.1)
        seg = 0.3 * src + sum(_resonator(src, f, 60 + 0.05 * f, sr) * g for f, g in zip(vowel, (4.0, 2.0, 1.0)))
        out[t0:t0 + m] += seg * np.sin(np.pi * np.arange(m) / m) ** 0.7
        t0 += syl + int(rng.uniform(0.02, 0.08) * sr) + (int(rng.uniform(0.2, 0.4) * sr) if rng.random() < 0.15 else 0)
    out = sps.sosfiltfilt(sps.butter(12, top_hz, fs=sr, output="sos"), out)
    return (0.1 * out / np.sqrt(np.mean(out ** 2))).astype(np.float32)


def _available(name: str) -> bool:
    if name == "dfnet3": return True
    from dfnb.enhance import PRETRAINED
    return (ROOT / "dfnb" / "models" / PRETRAINED[name]).is_file()

@functools.lru_cache(maxsize=None)
def _fn(name: str):
    from dfnb.enhance import init_df, enhance
    m, st, _ = init_df(name)
    return lambda x: enhance(m, st, x)

@pytest.fixture(params=MODELS)
def model(request):
    if not _available(request.param): pytest.skip(f"{request.param}: not shipped (no dfnb/models/{request.param}.pt)")
    return request.param


# ------------------------------------------------------------------------------------------------ the signals
@functools.lru_cache(maxsize=None)
def _synthetic():
    "([(name, voice, bandwidth)], long voice for equivariance, noisy-at-20-dB pairs)."
    from dfnb.signals import pink_noise, white_noise, mix_at_snr
    x, long_x = fullband_voice(4.0, seed=0), E.at_dbfs(fullband_voice(6.0, seed=0), -25)
    pairs = []
    for i, nz in enumerate((pink_noise, white_noise)):
        c = E.at_dbfs(x, -25).astype(np.float64)
        noisy, _ = mix_at_snr(c, nz(len(c), seed=i).astype(np.float64), 20.0)
        pairs.append((nz.__name__, c.astype(np.float32), noisy.astype(np.float32)))
    return [("fullband_voice", x, 20000)], long_x, pairs

def _debian_voice(lang: str, rng, min_s: float):
    "Clips of a held-out klettres language from the Debian package, joined, at 48 kHz; bandwidth measured as the corpus does."
    import soundfile as sf, soxr
    from dfnb.corpus import effective_bandwidth, bandwidth_bucket
    files = sorted((KLETTRES_DEB / lang).glob("*/*.ogg")); parts, n = [], 0
    for i in rng.permutation(len(files)):
        x, sr = sf.read(str(files[int(i)]), dtype="float64", always_2d=True); x = x.mean(1)
        if sr != SR: x = soxr.resample(x, sr, SR, quality="VHQ")
        if not np.any(x): continue
        parts += [E.at_dbfs(x, -25).astype(np.float64), np.zeros(int(0.12 * SR))]; n += len(x) + int(0.12 * SR)
        if n >= min_s * SR: break
    y = np.concatenate(parts)
    return E.at_dbfs(y, -25), int(bandwidth_bucket(effective_bandwidth(y, SR)) or 0)

def _real_source() -> str | None:
    if CORPUS_REAL.is_dir() and any(CORPUS_REAL.glob("speech_klettres_test_bw*.hdf5")): return "corpus"
    if (KLETTRES_DEB / "en").is_dir(): return "debian"
    return None

@functools.lru_cache(maxsize=None)
def _real():
    "([(name, voice, bandwidth)], long voice, pairs at 20 dB) from held-out klettres voices (languages no split trains on)."
    from dfnb.signals import pink_noise, mix_at_snr
    if _real_source() == "corpus":
        voices, (lang, long_x, _) = E.transparency_voices(CORPUS_REAL, n=1)
    else:
        rng = np.random.default_rng(0)
        x, bw = _debian_voice("en", rng, 4.6); long_x, _ = _debian_voice("en", rng, 8.6)
        voices = [("en", x[: int(5.4 * SR)], bw)]
    c = voices[0][1].astype(np.float64)
    noisy, _ = mix_at_snr(c, pink_noise(len(c), seed=0).astype(np.float64), 20.0)
    return voices, long_x, [("pink_noise", c.astype(np.float32), noisy.astype(np.float32))]

def _signal(kind: str):
    if kind == "synthetic": return _synthetic()
    src = _real_source()
    if src is None: pytest.skip(f"no held-out real voices: neither {CORPUS_REAL} (dfnb-make-corpus --real) nor {KLETTRES_DEB} (klettres-data)")
    return _real()


# ------------------------------------------------------------------------------------------------ the measurements
@functools.lru_cache(maxsize=None)
def _measure(name: str, kind: str) -> dict:
    from dfnb.metrics import si_sdr
    voices, long_x, pairs = _signal(kind); fn = _fn(name)
    tr = [(v, r) for v, x, bw in voices for r in E.transparency(fn, x, bw)]
    worst_sdr = min(tr, key=lambda t: t[1]["si_sdr"])
    worst_gain = max(((v, r["level_dbfs"], b, g) for v, r in tr for b, g in r["gains"].items()), key=lambda t: abs(t[3]))
    margins = [(si_sdr(c, fn(n)) - si_sdr(c, n), nz) for nz, c, n in pairs]
    return dict(si_sdr=(worst_sdr[1]["si_sdr"], f" (worst: {worst_sdr[0]} at {worst_sdr[1]['level_dbfs']} dBFS; "
                        + ", ".join(f"{r['level_dbfs']}: {r['si_sdr']:.1f}" for _, r in tr) + ")"),
                gain=(abs(worst_gain[3]), f" (worst: {worst_gain[2]} band {worst_gain[3]:+.2f} dB, {worst_gain[0]} at {worst_gain[1]} dBFS)"),
                snr20=(min(margins)[0], " (output - input SI-SDR at 20 dB SNR; " + ", ".join(f"{nz}: {d:+.2f} dB" for d, nz in margins) + ")"),
                equi=E.equivariance(fn, long_x))

def _judge(model: str, kind: str, metric: str, measured: float, detail: str = ""):
    "Pass at the goal; xfail (printing measured, goal, floor) between floor and goal or with no floor; fail below the floor."
    goal, hib = GOALS[metric], HIGHER_IS_BETTER[metric]
    floor = FLOORS.get(model, {}).get(kind, {}).get(metric)
    ok = (lambda t: measured >= t) if hib else (lambda t: measured <= t)
    msg = f"{model}, {kind} voice: {metric} measured {measured:.2f}, goal {'>=' if hib else '<='} {goal:g}{detail}"
    if ok(goal): return
    if floor is not None and not ok(floor): pytest.fail(f"{msg}; worse than its measured floor {floor:g} (a regression)")
    pytest.xfail(f"{msg}; " + (f"floor {floor:g} met" if floor is not None else "no floor set"))


# ------------------------------------------------------------------------------------------------ the tests
def test_fixture_is_full_band():
    """The synthetic fixture holds harmonics in every band up to 20 kHz and nothing above 20.6 kHz. (Its 1/k harmonic
    tilt puts the 16-20 kHz band about 60 dB under the whole, so `dfnb.corpus.effective_bandwidth`'s 50 dB rule on the
    running median reads it as narrow; flatter fixtures that pass that rule are not transparent through DFN3 at all.)"""
    x = fullband_voice(4.0)
    f = np.fft.rfftfreq(len(x), 1 / SR); P = np.abs(np.fft.rfft(x)) ** 2
    for lo, hi in E.BANDS: assert 10 * np.log10(P[(f >= lo) & (f < hi)].sum() / P.sum()) > -70, (lo, hi)
    top = P[(f >= 19000) & (f < 20000)]; assert top.max() > 1e4 * np.median(P[f >= 21000])   # harmonic peaks up to 20 kHz
    assert 10 * np.log10(P[f >= 20600].sum() / P.sum()) < -90                          # and nothing above the band edge
    g = E.band_gains(x, x); assert set(g) == {f"{lo // 1000}-{hi // 1000}k" for lo, hi in E.BANDS} and all(v == 0 for v in g.values())

def test_measures():
    "The measures themselves: an identity is perfectly transparent and equivariant; a gain shows as a band gain, a gate does not scale."
    x = fullband_voice(5.0, seed=3)
    r = E.transparency(lambda y: y, x, 20000, levels=(-25,))[0]
    assert r["si_sdr"] > 100 and max(abs(v) for v in r["gains"].values()) < 1e-6
    assert all(v < -100 for v in E.equivariance(lambda y: y, x).values())
    assert all(abs(v - 20 * np.log10(0.5)) < 1e-6 for v in E.band_gains(x, 0.5 * x).values())
    assert E.band_gains(x, x, max_freq=8000).keys() == {"0-1k", "1-2k", "2-4k", "4-8k"}
    gate = lambda y: np.where(np.abs(y) > 0.05, y, 0).astype(np.float32)          # level-dependent: not equivariant
    assert E.equivariance(gate, x)["x0.1"] > -10

@pytest.mark.parametrize("kind", ["synthetic", "real"])
def test_transparent_si_sdr(model, kind):
    v, why = _measure(model, kind)["si_sdr"]; _judge(model, kind, "si_sdr_db", v, why)

@pytest.mark.parametrize("kind", ["synthetic", "real"])
def test_band_gains(model, kind):
    "Every band within the voice's measured bandwidth (up to 20 kHz), at every level, within +-1 dB."
    v, why = _measure(model, kind)["gain"]; _judge(model, kind, "band_gain_db", v, why)

@pytest.mark.parametrize("kind", ["synthetic", "real"])
def test_snr20_rule(model, kind):
    "At 20 dB SNR the output's SI-SDR is never below the input's."
    v, why = _measure(model, kind)["snr20"]; _judge(model, kind, "snr20_margin_db", v, why)

@pytest.mark.parametrize("kind", ["synthetic", "real"])
@pytest.mark.parametrize("factor", ["x3", "x0.1"])
def test_level_equivariance(model, kind, factor):
    "20 log10 ||y(a x)/a - y(x)|| / ||y(x)|| after the first 4 s."
    e = _measure(model, kind)["equi"]
    _judge(model, kind, "equivariance_db", e[factor], f" (a = {factor[1:]}; both: " + ", ".join(f"{k} {v:.1f} dB" for k, v in e.items()) + ")")


def test_eval_real_mixtures():
    "bench/eval_real.py's mixture set: held-out voices of the measured bandwidth, ~5 s, at the SNR asked, deterministic."
    if not CORPUS_REAL.is_dir() or not any(CORPUS_REAL.glob("speech_klettres_test_bw*.hdf5")):
        pytest.skip(f"no {CORPUS_REAL} (dfnb-make-corpus --real)")
    from dfnb.metrics import snr
    items = E.make_items(CORPUS_REAL, seed=0, n_utt=1, n_utt_bl=1, snrs=(5,), families=("typing", "babble"))
    assert [i["group"] for i in items] == ["full-band"] * 2 + ["band-limited"] * 2
    for it in items:
        assert E.UTT_MIN_S * SR - 1 <= len(it["clean"]) <= E.UTT_MAX_S * SR
        assert (it["bw"] >= E.FULLBAND_MIN_HZ) == (it["group"] == "full-band")
        assert abs(snr(it["clean"], it["noisy"]) - 5) < 0.01
    again = E.make_items(CORPUS_REAL, seed=0, n_utt=1, n_utt_bl=1, snrs=(5,), families=("typing", "babble"))
    assert all(np.array_equal(a["noisy"], b["noisy"]) for a, b in zip(items, again))
