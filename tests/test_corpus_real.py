"""dfnb-make-corpus with real recordings from Debian packages, on a fake package tree (CI has no packages): discovery,
the missing-package message, the bandwidth rule on signals of known band, buckets, dropped clips, disjoint splits and
the reserved sets."""
import json
import numpy as np, pytest
from dfnb.corpus import (make_corpus_cli, make_corpus, discover_real, fake_debian_root, effective_bandwidth, bandwidth_bucket,
                         clip_problem, split_real, load_real, read_cat, RealClip, RESERVED, BW_EDGES, TEST_NOISE_FAMILIES)
from dfnb.data import Hdf5Clips, read_dataset_cfg

@pytest.fixture(scope="module")
def root(tmp_path_factory): return fake_debian_root(tmp_path_factory.mktemp("deb"))

@pytest.fixture(scope="module")
def corpus(root, tmp_path_factory):
    out = tmp_path_factory.mktemp("c") / "corpus"
    make_corpus(out, minutes=0.1, sources=("synth",), noise_minutes=0.5, n_rirs=1, progress=lambda m: None,
                real=("klettres", "fillets-cs", "asterisk-en", "asterisk-fr", "fillets-noise", "openttd"), debian_root=root)
    return out

def test_discovery_and_missing_packages(root, tmp_path):
    found, missing = discover_real(root)
    assert sorted(found) == ["asterisk-en", "asterisk-fr", "fillets-cs", "fillets-noise", "klettres", "openttd"]
    assert missing["asterisk-es"].endswith("(apt-get install asterisk-core-sounds-es-wav)")
    assert discover_real(tmp_path, ("klettres",))[1]["klettres"].endswith("(apt-get install klettres-data)")
    assert {c.speaker for c in found["klettres"]} == {f"klettres-{l}" for l in ("fr", "de", "it", "en", "es")}
    assert {c.speaker for c in found["asterisk-en"]} == {"asterisk-Allison"}

def test_reserved_voices_are_never_read(root):
    found, _ = discover_real(root)
    assert RESERVED == ("fillets-ng-data-nl",)
    assert not [c for cs in found.values() for c in cs if "/nl/" in c.path]
    assert (root / "usr/share/games/fillets-ng/sound/gods/nl/bog-m-hallo.ogg").exists()       # present, yet skipped

def test_opensfx_archive(root):
    cat = root / "usr/share/games/openttd/baseset/opensfx/opensfx.cat"
    assert [n for n, _, _ in read_cat(cat)] == ["Diesel train", "Sheep", "Toyland: Bubble"]
    x, sr = load_real(discover_real(root, ("openttd",))[0]["openttd"][0])
    assert sr == 44100 and 0.5 < len(x) / sr < 0.7

def _lowpassed(fc, sr=48000, seed=0):
    import soxr
    x = np.random.default_rng(seed).standard_normal(2 * sr)
    return soxr.resample(soxr.resample(x, sr, int(2 * fc), quality="VHQ"), int(2 * fc), sr, quality="VHQ")

@pytest.mark.parametrize("fc", [3400, 4000, 8000, 11025, 16000, 22050])
def test_bandwidth_of_lowpassed_noise(fc):
    # soxr's transition band ends at the cutoff and starts within 4% below it; the rule never reads above the cutoff
    assert 0.96 * fc <= effective_bandwidth(_lowpassed(fc), 48000) <= fc + 50

def test_bandwidth_ignores_a_tone_above_the_band():
    x = _lowpassed(6000); x += 0.1 * np.sin(2 * np.pi * 12000 * np.arange(len(x)) / 48000)
    assert effective_bandwidth(x, 48000) < 6050

def test_bandwidth_does_not_come_from_the_sample_rate():
    import soxr
    x = soxr.resample(_lowpassed(5000, sr=44100), 44100, 48000)                          # a 44.1 kHz file holding 5 kHz
    assert 4800 <= effective_bandwidth(x, 48000) <= 5050

def test_buckets():
    assert [bandwidth_bucket(b) for b in (3400, 3890, 7000, 10600, 21000)] == [None, 3500, 7000, 10000, 20000]
    assert list(BW_EDGES) == sorted(BW_EDGES)

def test_clip_problems():
    t = np.arange(16000) / 16000; s = 0.3 * np.sin(2 * np.pi * 200 * t)
    assert clip_problem(s, 16000) is None
    assert clip_problem(np.clip(4 * s, -1, 1), 16000) == "clipped"
    assert clip_problem(1e-4 * s, 16000) == clip_problem(np.zeros(16000), 16000) == "silent"

def test_corpus_buckets_and_drops(corpus):
    meta = json.loads((corpus / "corpus.json").read_text())["real"]
    assert meta["dropped"]["klettres"] == {"silent": 1, "clipped": 1}
    cfg = read_dataset_cfg(corpus / "dataset.cfg", corpus)
    speech = [f for rows in cfg.values() for f, _ in rows if "speech_" in str(f) and "_bw" in str(f)]
    assert speech
    for f in speech:
        c = Hdf5Clips(corpus / f)
        assert c.kind == "speech" and c.sr == 48000 and c.max_freq == int(str(f).split("_bw")[1].split(".")[0]) in BW_EDGES
    n = sum(v for s in meta["buckets"].values() for b in s.values() for v in b.values())
    assert n == sum(len(Hdf5Clips(corpus / f)) for f in speech)

def test_corpus_splits_are_disjoint(corpus):
    meta = json.loads((corpus / "corpus.json").read_text())["real"]
    spk = {k: {s for v in meta["speakers"][k].values() for s in v} for k in ("train", "valid", "test")}
    assert not spk["train"] & spk["valid"] and not spk["train"] & spk["test"] and not spk["valid"] & spk["test"]
    lang = meta["languages"]
    assert not set(lang["train"]) & set(lang["test"]) and not set(lang["train"]) & set(lang["valid"])
    assert "asterisk-Allison" in spk["test"] and "asterisk-June" in spk["train"]
    fam = meta["noise_families"]
    assert not set(fam["train"]) & set(TEST_NOISE_FAMILIES) and not set(fam["valid"]) & set(TEST_NOISE_FAMILIES)
    assert "typing" in fam["test"] and "babble-real" in fam["train"] and "babble-real" not in fam["test"]

def test_speaker_in_two_splits_is_refused():
    with pytest.raises(ValueError, match="more than one split"):
        split_real({"klettres": [RealClip("klettres", "a", "a", "x", "fr"), RealClip("klettres", "b", "b", "x", "en")]})

def test_cli_names_the_package_to_install(root, tmp_path, capsys):
    assert make_corpus_cli([str(tmp_path / "c"), "--sources", "synth", "--real", "klettres,asterisk-es", "--debian-root", str(root)]) == 2
    assert "apt-get install asterisk-core-sounds-es-wav" in capsys.readouterr().err and not (tmp_path / "c").exists()
    assert make_corpus_cli([str(tmp_path / "d"), "--real", "opera", "--sources", "synth"]) == 2
    assert "unknown" in capsys.readouterr().err

def test_g722(tmp_path):
    G722 = pytest.importorskip("G722", reason="the g722 wheel is not installed").G722
    t = np.arange(16000) / 16000
    pcm = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    p = tmp_path / "tone.g722"; p.write_bytes(G722(16000, 64000).encode(pcm))
    x, sr = load_real(RealClip("asterisk-en-g722", "tone", str(p)))
    assert sr == 16000 and len(x) == 16000
    f = np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(np.abs(np.fft.rfft(x)))]
    assert abs(f - 440) < 2
