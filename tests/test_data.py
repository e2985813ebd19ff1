"""DeepFilterNet-format data: files written by `write_hdf5` / `dfnb-prepare-data` are read back exactly, and by
DeepFilterNet's own Rust loader (`libdfdata`, wheel DeepFilterDataLoader 0.5.6), whose features equal dfnb's front
end on its spectra (1e-5: float32 rounding of features of order one, as in test_stft_erb_libdf). Bad input fails with
a message naming it, and never leaves a file under the final name."""
import importlib.util, json
import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("h5py", reason="h5py is not installed (pip install h5py)")
from dfnb.data import write_hdf5, Hdf5Clips, write_dataset_cfg, read_dataset_cfg, prepare_data_cli
from dfnb.signals import speech_like, pink_noise
from dfnb.stft_erb import DfParams, erb_features, cplx_features


def _ds(tmp_path, dtype="float32", codec="pcm"):
    d = tmp_path / f"ds_{dtype}_{codec}"; d.mkdir()
    write_hdf5(d / "speech.hdf5", "speech", [(f"s/{i}", speech_like(1.5 + 0.3 * i, seed=i)) for i in range(4)], 48000, dtype=dtype, codec=codec)
    write_hdf5(d / "noise.hdf5", "noise", [(f"n{i}", pink_noise(2 * 48000 + 7 * i, seed=9 + i)) for i in range(3)], 48000, dtype=dtype, codec=codec)
    both = [("speech.hdf5", 1), ("noise.hdf5", 1)]
    write_dataset_cfg(d / "dataset.cfg", {"train": both, "valid": both, "test": both})
    return d


@pytest.mark.parametrize("dtype,codec", [("float32", "pcm"), ("int16", "pcm"), ("float32", "flac")])
def test_libdfdata_reads_our_files_and_its_features_equal_ours(tmp_path, dtype, codec):
    if importlib.util.find_spec("libdfdata") is None:
        pytest.skip("libdfdata not installed (pip install --no-deps DeepFilterDataLoader==0.5.6 loguru; cp311 x86-64 only)")
    from libdfdata import PytorchDataLoader
    d = _ds(tmp_path, dtype, codec)
    p = DfParams(nb_df=96)
    dl = PytorchDataLoader(str(d), str(d / "dataset.cfg"), sr=p.sr, batch_size=2, max_len_s=1.0, fft_size=p.fft_size,
                           hop_size=p.hop_size, nb_erb=p.nb_erb, nb_spec=p.nb_df, norm_alpha=p.alpha,
                           min_nb_erb_freqs=p.min_nb_erb_freqs, num_workers=1, p_reverb=0.0, seed=0, log_level="error")
    n = 0
    for b in dl.iter_epoch("train", 0):
        X = b.noisy[:, 0]
        assert (erb_features(X, p) - b.feat_erb[:, 0]).abs().max() < 1e-5
        assert (cplx_features(X, p) - b.feat_spec[:, 0]).abs().max() < 1e-5
        assert set(b.snr.tolist()) <= {-5, 0, 5, 10, 20, 40} and set(b.gain.tolist()) <= {-6, 0, 6}
        n += 1
    assert n >= 2


def test_roundtrip_odd_lengths_and_stereo(tmp_path):
    rng = np.random.default_rng(0)
    clips = [("a", rng.uniform(-1, 1, 1).astype(np.float32)), ("b/c", rng.uniform(-1, 1, (2, 4801)).astype(np.float32))]
    h = Hdf5Clips(write_hdf5(tmp_path / "x.hdf5", "rir", clips, 16000, max_freq=4000))
    assert (h.kind, h.sr, h.max_freq, h.keys) == ("rir", 16000, 4000, ["a", "b_c"])
    np.testing.assert_array_equal(h["a"], clips[0][1][None]); np.testing.assert_array_equal(h["b_c"], clips[1][1])
    assert h.n_samples == {"a": 1, "b_c": 4801}


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match="codec must be"):
        write_hdf5(tmp_path / "a.hdf5", "speech", [("a", np.zeros(10))], 48000, codec="mp3")
    with pytest.raises(ValueError, match="appears twice"):
        write_hdf5(tmp_path / "b.hdf5", "speech", [("a/b", np.zeros(10)), ("a_b", np.zeros(10))], 48000)
    with pytest.raises(ValueError, match="no clips"):
        write_hdf5(tmp_path / "c.hdf5", "speech", [], 48000)
    assert not any(tmp_path.iterdir())                                  # no partial files, under any name
    with pytest.raises(FileNotFoundError):
        Hdf5Clips(tmp_path / "none.hdf5")
    (tmp_path / "bad.cfg").write_text("{not json")
    with pytest.raises(ValueError, match="not JSON"):
        read_dataset_cfg(tmp_path / "bad.cfg")
    (tmp_path / "bad2.cfg").write_text(json.dumps({"train": ["speech.hdf5"]}))
    with pytest.raises(ValueError, match="list of"):
        read_dataset_cfg(tmp_path / "bad2.cfg")


def test_prepare_data_cli(tmp_path, capsys):
    sf.write(tmp_path / "a.flac", speech_like(0.5, seed=1), 22050)
    (tmp_path / "list.txt").write_text("a.flac\n# a comment\nmissing.wav\n")
    assert prepare_data_cli(["speech", str(tmp_path / "list.txt"), str(tmp_path / "out.hdf5"), "--sr", "48000", "--codec", "flac"]) == 0
    err = capsys.readouterr().err
    assert "skipped" in err and "missing.wav" in err
    h = Hdf5Clips(tmp_path / "out.hdf5")
    assert h.keys == ["a.flac"] and h.codec == "flac" and abs(h.n_samples["a.flac"] - round(24000 * 48000 / 22050)) <= 1
    assert prepare_data_cli(["speech", str(tmp_path / "list.txt"), str(tmp_path / "out.hdf5")]) == 2      # exists
    assert prepare_data_cli(["speech", str(tmp_path / "nolist.txt"), str(tmp_path / "o2.hdf5")]) == 2
    (tmp_path / "only_bad.txt").write_text("missing.wav\n")
    assert prepare_data_cli(["speech", str(tmp_path / "only_bad.txt"), str(tmp_path / "o3.hdf5")]) == 2
    assert not (tmp_path / "o3.hdf5").exists()


def _mix(tmp_path, **kw):
    from dfnb.data import MixDataset
    d = _ds(tmp_path)
    return MixDataset(d, d / "dataset.cfg", max_len_s=0.5, **kw)


def test_mix_labels_are_deepfilternets_lists_and_uniform(tmp_path):
    from collections import Counter
    from dfnb.data import SNRS, GAINS
    ds = _mix(tmp_path, seed=3)
    snr, gain = Counter(), Counter()
    for e in range(60):
        ds.set_epoch(e)
        for i in range(len(ds)):
            it = ds[i]; snr[it["snr"]] += 1; gain[it["gain"]] += 1
    n = sum(snr.values())
    assert set(snr) == set(SNRS) and set(gain) == set(GAINS)
    # uniform: each count within 5 standard deviations of n/k
    for c, k in ((snr, len(SNRS)), (gain, len(GAINS))):
        m, sd = n / k, (n / k * (1 - 1 / k)) ** 0.5
        assert all(abs(v - m) < 5 * sd for v in c.values()), c


def test_mix_reproducible_across_workers_and_epochs(tmp_path):
    import torch
    from dfnb.data import mix_collate
    ds = _mix(tmp_path, seed=0)
    one = [ds[i]["noisy"] for i in range(len(ds))]
    dl = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2, collate_fn=mix_collate(DfParams(nb_df=96)))
    got = torch.cat([b["noisy"] for b in dl])
    assert torch.equal(got, torch.stack(one))
    assert not torch.equal(ds.set_epoch(1)[0]["noisy"], one[0])


def test_mix_bad_input(tmp_path):
    from dfnb.data import MixDataset
    d = _ds(tmp_path)
    with pytest.raises(ValueError, match="no rir"):
        MixDataset(d, d / "dataset.cfg", p_reverb=0.5)
    with pytest.raises(ValueError, match="not at 16000"):
        MixDataset(d, d / "dataset.cfg", sr=16000)
    with pytest.raises(ValueError, match="split must be"):
        MixDataset(d, d / "dataset.cfg", split="dev")


def test_mix_reverb_target_is_early_part(tmp_path):
    from dfnb.data import MixDataset
    d = _ds(tmp_path)
    rng = np.random.default_rng(0)
    t = np.arange(24000) / 48000
    rirs = [(f"r{i}", (rng.standard_normal(24000) * np.exp(-t / 0.1)).astype(np.float32)) for i in range(2)]
    write_hdf5(d / "rir.hdf5", "rir", rirs, 48000)
    both = [("speech.hdf5", 1), ("noise.hdf5", 1), ("rir.hdf5", 1)]
    write_dataset_cfg(d / "dataset2.cfg", {"train": both})
    ds = MixDataset(d, d / "dataset2.cfg", max_len_s=0.5, p_reverb=1.0, snrs=(40,))
    it = ds[0]
    assert it["speech"].abs().max() > 0 and torch_finite(it)


def torch_finite(it):
    import torch
    return all(torch.isfinite(it[k]).all() for k in ("speech", "noisy"))
