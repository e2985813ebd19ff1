"""MixDataset's band limits, transparency options and paired collections (issue 22).

- A band-limited item (collection `max_freq` < sr/2) holds neither speech nor noise above `max_freq`: every DFT bin of
  the whole item above it is zero to rounding, and in the STFT the network sees (frames away from the clip's ends) the
  energy above `max_freq` is more than 60 dB below the in-band energy (`band_limit`'s bound for white noise, the worst
  case; its 500 Hz raised-cosine taper keeps the 20 ms Vorbis window's smear out of the high bins).
- Full-band items are bit-identical to the recipe before band limits (typed out below as the reference).
- `band_mask`, `p_clean`, `gain_range`, paired collections (CLI round trip, refusals), determinism per (seed, epoch, index).
"""
import numpy as np
import pytest
import soundfile as sf
import torch

pytest.importorskip("h5py", reason="h5py is not installed (pip install h5py)")
from dfnb.data import (write_hdf5, write_dataset_cfg, Hdf5Clips, MixDataset, mix_collate, band_limit, band_mask,
                       prepare_data_cli, CLEAN_SNR, _fit, _draw, _early)
from dfnb.metrics import snr as snr_db
from dfnb.signals import speech_like, pink_noise, white_noise
from dfnb.stft_erb import DfParams, analysis

SR = 48000


def high_vs_in_band(y, max_freq, p=DfParams(), edge=2):
    "STFT energy above `max_freq` over the energy at or below it, dB, frames away from the clip's ends."
    S = analysis(torch.as_tensor(y, dtype=torch.float32), p).abs().square()[edge:-edge].sum(0)
    f = torch.arange(S.shape[-1]) * p.sr / p.fft_size
    return 10 * np.log10(float(S[f > max_freq].sum() / S[f <= max_freq].sum()))


@pytest.fixture
def data(tmp_path):
    "Full-band speech, speech marked 8 kHz (full-band content: the filter must remove it), white noise, rooms."
    d = tmp_path
    write_hdf5(d / "speech.hdf5", "speech", [(f"s{i}", speech_like(0.8 + 0.3 * i, seed=i)) for i in range(4)], SR)
    write_hdf5(d / "speech8k.hdf5", "speech", [(f"t{i}", speech_like(0.9, seed=20 + i)) for i in range(3)], SR, max_freq=8000)
    write_hdf5(d / "noise.hdf5", "noise", [(f"n{i}", white_noise(SR + 999 * i, seed=40 + i)) for i in range(3)], SR)
    t = np.arange(12000) / SR; rng = np.random.default_rng(0)
    write_hdf5(d / "rir.hdf5", "rir", [(f"r{i}", rng.standard_normal(12000) * np.exp(-t / 0.05)) for i in range(2)], SR)
    write_dataset_cfg(d / "full.cfg", {"train": [("speech.hdf5", 1.5), ("noise.hdf5", 1), ("rir.hdf5", 1)]})
    write_dataset_cfg(d / "band.cfg", {"train": [("speech.hdf5", 1), ("speech8k.hdf5", 2), ("noise.hdf5", 1), ("rir.hdf5", 1)]})
    return d


def test_band_limit_filter():
    x = white_noise(2 * SR, seed=1).astype(np.float64)
    for mf in (4000, 8000, 11025, 16000):
        y = band_limit(x, SR, mf); Y, X = np.fft.rfft(y), np.fft.rfft(x); f = np.fft.rfftfreq(len(x), 1 / SR)
        assert np.abs(Y[f > mf]).max() < 1e-12 * np.abs(Y).max()            # stop band: float64 rounding
        np.testing.assert_allclose(Y[f <= mf - 500], X[f <= mf - 500], rtol=1e-9, atol=1e-9 * np.abs(X).max())
        assert high_vs_in_band(y, mf) < -60


@pytest.mark.parametrize("p_reverb", [0.0, 0.6])
def test_band_limited_items_have_an_empty_high_band(data, p_reverb):
    ds = MixDataset(data, data / "band.cfg", max_len_s=0.6, p_reverb=p_reverb, seed=2)
    n_limited = 0
    for i in range(len(ds)):
        it = ds[i]
        if it["max_freq"] == 8000:
            n_limited += 1
            for k in ("noisy", "speech"):
                y = it[k][0].double().numpy(); Y = np.fft.rfft(y); f = np.fft.rfftfreq(len(y), 1 / SR)
                assert np.abs(Y[f > 8000]).max() < 1e-5 * np.abs(Y).max()        # float32 rounding of the item
                assert high_vs_in_band(y, 8000) < -60, (i, k)
            if p_reverb == 0:                                                      # the label is the in-band SNR, exactly
                assert abs(snr_db(it["speech"][0].double().numpy(), it["noisy"][0].double().numpy()) - it["snr"]) < 1e-3
        else:
            assert it["max_freq"] == SR / 2                                       # full band keeps its (white) noise
            if it["snr"] <= 10: assert high_vs_in_band(it["noisy"][0], 8000) > -20
    assert n_limited >= 4


def _reference_item(ds, i):
    "The recipe before band limits and the new options (the code MixDataset.__getitem__ had), for full-band items."
    rng = np.random.default_rng([ds.seed, ds.epoch, int(i)])
    ci, ki = ds.order[i]; c = ds.by_kind["speech"][ci][0]; k = c.keys[ki]
    s = _fit(c[k][0], ds.n, rng, loop=False).astype(np.float64)
    target = s
    if ds.p_reverb > 0 and rng.random() < ds.p_reverb:
        rc, rk = _draw(ds.by_kind["rir"], rng); h = rc[rk][0].astype(np.float64); h /= np.abs(h).max() + 1e-12
        from scipy.signal import fftconvolve
        s, target = fftconvolve(s, h)[:ds.n], fftconvolve(s, _early(h, ds.sr))[:ds.n]
    gain, snr = ds.gains[int(rng.integers(len(ds.gains)))], ds.snrs[int(rng.integers(len(ds.snrs)))]
    g = 10 ** (gain / 20); s, target = s * g, target * g
    noise = np.zeros(ds.n)
    for _ in range(int(rng.integers(ds.n_noises[0], ds.n_noises[1] + 1))):
        nc, nk = _draw(ds.by_kind["noise"], rng); noise += _fit(nc[nk][0], ds.n, rng, loop=True)
    ps, pn = np.mean(target ** 2), np.mean(noise ** 2)
    if ps > 0 and pn > 0: noise *= np.sqrt(ps / (pn * 10 ** (snr / 10)))
    y = s + noise
    peak = np.abs(y).max()
    if peak > 1: y, target = y / peak, target / peak
    return target.astype(np.float32), y.astype(np.float32), snr, gain


@pytest.mark.parametrize("cfg", ["full.cfg", "band.cfg"])
def test_full_band_items_are_bit_identical_to_before(data, cfg):
    ds = MixDataset(data, data / cfg, max_len_s=0.6, p_reverb=0.5, seed=5)
    for e in (0, 1):
        ds.set_epoch(e)
        for i in range(len(ds)):
            if ds.sources[ds.order[i][0]][0].max_freq < SR // 2: continue
            it, (t, y, snr, gain) = ds[i], _reference_item(ds, i)
            assert np.array_equal(it["speech"][0].numpy(), t) and np.array_equal(it["noisy"][0].numpy(), y)
            assert (it["snr"], it["gain"], it["max_freq"]) == (snr, gain, 24000.0)


def test_band_mask():
    m = band_mask(torch.tensor([8000.0, 11025.0, 24000.0]), 481, SR)
    assert m.shape == (3, 481) and m.dtype == torch.float32 and m.sum(1).tolist() == [161, 221, 481]
    f = torch.arange(481) * 50.0
    assert torch.equal(m[1], (f <= 11025).float())
    assert band_mask(torch.tensor([4000]), 5, 16000).tolist() == [[1, 1, 1, 0, 0]]     # int input: float mask
    assert band_mask(torch.tensor([8000.0], dtype=torch.float64), 481, SR).dtype == torch.float64


def test_p_clean_items_are_their_own_target(data):
    ds = MixDataset(data, data / "band.cfg", max_len_s=0.6, p_reverb=1.0, p_clean=1.0, seed=1)
    for i in range(len(ds)):
        it = ds[i]
        assert torch.equal(it["noisy"], it["speech"]) and it["snr"] == CLEAN_SNR and it["speech"].abs().max() > 0
    some = MixDataset(data, data / "band.cfg", max_len_s=0.3, p_clean=0.3, seed=1)
    n, k = 0, 0
    for e in range(15):
        some.set_epoch(e)
        for i in range(len(some)):
            it = some[i]; n += 1; k += it["snr"] == CLEAN_SNR
            assert torch.equal(it["noisy"], it["speech"]) == (it["snr"] == CLEAN_SNR)
    sd = (n * 0.3 * 0.7) ** 0.5
    assert abs(k - 0.3 * n) < 5 * sd, (k, n)                                         # within 5 standard deviations


def test_gain_range(data):
    ds = MixDataset(data, data / "full.cfg", max_len_s=0.3, gain_range=(-30, 10), seed=0)
    g = [d[i]["gain"] for e in range(10) for d in [ds.set_epoch(e)] for i in range(len(d))]
    assert min(g) >= -30 and max(g) <= 10 and len(set(g)) == len(g) and max(g) - min(g) > 20
    with pytest.raises(ValueError, match="gain_range"):
        MixDataset(data, data / "full.cfg", gain_range=(6, -6))
    with pytest.raises(ValueError, match="p_clean"):
        MixDataset(data, data / "full.cfg", p_clean=1.5)


def _pair_folders(root, n=3, sr=16000):
    for d in ("noisy", "clean"): (root / d / "spk").mkdir(parents=True)
    for i in range(n):
        c = speech_like(0.4 + 0.1 * i, sr, seed=i)
        sf.write(root / "clean" / "spk" / f"u{i}.flac", c, sr)
        sf.write(root / "noisy" / "spk" / f"u{i}.flac", c + 0.05 * pink_noise(len(c), seed=9 + i), sr)
    return root / "noisy", root / "clean"


def test_paired_round_trip(tmp_path):
    N, C = _pair_folders(tmp_path / "in")
    out = tmp_path / "paired.hdf5"
    assert prepare_data_cli(["paired", "--noisy-dir", str(N), "--clean-dir", str(C), str(out), "--sr", "48000"]) == 0
    h = Hdf5Clips(out)
    assert (h.kind, h.sr, h.keys) == ("paired", 48000, ["spk_u0.flac", "spk_u1.flac", "spk_u2.flac"])
    for k in h.keys:
        n, c = h.pair(k)
        assert n.shape == c.shape and np.array_equal(h[k], c)
        assert 15 < snr_db(c[0].astype(np.float64), n[0].astype(np.float64)) < 40
    write_dataset_cfg(tmp_path / "dataset.cfg", {"train": [("paired.hdf5", 2)], "valid": [("paired.hdf5", 1)]})
    ds = MixDataset(tmp_path, tmp_path / "dataset.cfg", max_len_s=0.3, gains=(0,), seed=0)   # no noise needed
    assert len(ds) == 6
    for i in range(len(ds)):
        it = ds[i]; n, c = h.pair(ds.sources[0][0].keys[ds.order[i][1]])
        o = next(o for o in range(c.shape[1] - ds.n + 1) if np.array_equal(c[0, o:o + ds.n], it["speech"][0].numpy()))
        assert np.array_equal(it["noisy"][0].numpy(), n[0, o:o + ds.n])                      # the stored noisy, same segment
        assert abs(it["snr"] - snr_db(it["speech"][0].double().numpy(), it["noisy"][0].double().numpy())) <= 0.5
    with pytest.raises(ValueError, match="not a paired"):
        write_hdf5(tmp_path / "s.hdf5", "speech", [("a", np.ones(10))], SR); Hdf5Clips(tmp_path / "s.hdf5").pair("a")


def test_paired_band_limited_and_with_mixtures(tmp_path, data):
    pairs = [(f"p{i}", (speech_like(0.8, seed=i) + 0.1 * white_noise(int(0.8 * SR), seed=i), speech_like(0.8, seed=i)))
             for i in range(2)]
    write_hdf5(data / "paired8k.hdf5", "paired", pairs, SR, max_freq=8000)
    write_dataset_cfg(data / "mixed.cfg", {"train": [("speech.hdf5", 1), ("paired8k.hdf5", 1), ("noise.hdf5", 1)]})
    ds = MixDataset(data, data / "mixed.cfg", max_len_s=0.6, seed=0)
    kinds = set()
    for i in range(len(ds)):
        it = ds[i]; kinds.add(ds.sources[ds.order[i][0]][0].kind)
        if it["max_freq"] == 8000:
            assert high_vs_in_band(it["noisy"][0], 8000) < -60 and high_vs_in_band(it["speech"][0], 8000) < -60
    assert kinds == {"speech", "paired"}


def test_paired_refusals(tmp_path, capsys):
    N, C = _pair_folders(tmp_path / "a")
    sf.write(N / "only_noisy.wav", np.zeros(100), 16000); sf.write(C / "spk" / "only_clean.wav", np.zeros(100), 16000)
    out = tmp_path / "x.hdf5"
    args = lambda n, c, o=out: ["paired", "--noisy-dir", str(n), "--clean-dir", str(c), str(o)]
    assert prepare_data_cli(args(N, C)) == 2
    err = capsys.readouterr().err
    assert "only_noisy.wav" in err and "spk/only_clean.wav" in err and "1 only in" in err
    (N / "only_noisy.wav").unlink(); (C / "spk" / "only_clean.wav").unlink()
    sf.write(N / "spk" / "u0.flac", speech_like(0.4, 22050, seed=0), 22050)                # other sample rate
    assert prepare_data_cli(args(N, C)) == 2 and "22050 Hz" in capsys.readouterr().err
    sf.write(N / "spk" / "u0.flac", speech_like(0.3, 16000, seed=0), 16000)                # other length
    assert prepare_data_cli(args(N, C)) == 2 and "samples" in capsys.readouterr().err
    sf.write(N / "spk" / "u0.flac", speech_like(0.4, 16000, seed=0), 16000)
    sf.write(C / "spk" / "u0.flac", np.zeros(6400), 16000)                                 # silent clean
    assert prepare_data_cli(args(N, C)) == 2 and "silent" in capsys.readouterr().err
    (C / "spk" / "u0.flac").write_bytes(b"not audio")                                      # unreadable
    assert prepare_data_cli(args(N, C)) == 2 and "cannot read" in capsys.readouterr().err
    (tmp_path / "empty_n").mkdir(); (tmp_path / "empty_c").mkdir()
    assert prepare_data_cli(args(tmp_path / "empty_n", tmp_path / "empty_c")) == 2 and "no audio" in capsys.readouterr().err
    assert prepare_data_cli(args(tmp_path / "nowhere", C)) == 2
    assert not out.exists() and not list(tmp_path.glob("*.hdf5*")) and not list(tmp_path.glob(".*"))
    with pytest.raises(ValueError, match="differ"):
        write_hdf5(tmp_path / "p.hdf5", "paired", [("a", (np.ones((2, 10)), np.ones((1, 10))))], SR)
    with pytest.raises(ValueError, match="noisy, clean"):
        write_hdf5(tmp_path / "p.hdf5", "paired", [("a", np.ones(10))], SR)
    with pytest.raises(ValueError, match="or a paired one"):                               # speech with no noise
        write_hdf5(tmp_path / "s.hdf5", "speech", [("a", np.ones(100))], SR)
        write_dataset_cfg(tmp_path / "d.cfg", {"train": [("s.hdf5", 1)]}); MixDataset(tmp_path, tmp_path / "d.cfg")


def test_deterministic_per_seed_epoch_index(data):
    pairs = [(f"p{i}", (speech_like(0.8, seed=i) + 0.1 * white_noise(int(0.8 * SR), seed=i), speech_like(0.8, seed=i)))
             for i in range(2)]
    write_hdf5(data / "paired.hdf5", "paired", pairs, SR, max_freq=11025)
    write_dataset_cfg(data / "all.cfg", {"train": [("speech.hdf5", 1), ("speech8k.hdf5", 1.5), ("paired.hdf5", 1),
                                                   ("noise.hdf5", 1), ("rir.hdf5", 1)]})
    kw = dict(max_len_s=0.3, p_reverb=0.5, p_clean=0.3, gain_range=(-20, 6), seed=7)
    a = MixDataset(data, data / "all.cfg", **kw).set_epoch(3)
    b = MixDataset(data, data / "all.cfg", **kw).set_epoch(1).set_epoch(3)
    one = [a[i] for i in range(len(a))]
    for i in reversed(range(len(b))):                                     # any order, any instance
        x, y = one[i], b[i]
        assert torch.equal(x["noisy"], y["noisy"]) and torch.equal(x["speech"], y["speech"])
        assert (x["snr"], x["gain"], x["max_freq"]) == (y["snr"], y["gain"], y["max_freq"])
    dl = torch.utils.data.DataLoader(a, batch_size=3, num_workers=2, collate_fn=mix_collate(DfParams(nb_df=96)))
    batches = list(dl)
    assert torch.equal(torch.cat([bt["noisy"] for bt in batches]), torch.stack([it["noisy"] for it in one]))
    mf = torch.cat([bt["max_freq"] for bt in batches])
    assert mf.dtype == torch.float32 and set(mf.tolist()) == {8000.0, 11025.0, 24000.0}
    assert not torch.equal(a.set_epoch(4)[0]["noisy"], one[0]["noisy"])
