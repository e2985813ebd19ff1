"""dfnb-make-corpus: what it writes (DeepFilterNet's HDF5 layout, band limits, held-out sources), that it is disjoint
from dfnb-evaluate's set, that DeepFilterNet's own loader reads it, and its refusals."""
import json
import numpy as np, pytest
from dfnb.corpus import make_corpus_cli, make_corpus, sentences, speech_clip, available_sources, ESPEAK_VOICES, SYNTHESISERS, SOURCES
from dfnb.data import Hdf5Clips, read_dataset_cfg
from dfnb.evaluate import SENTENCES, VOICES

def test_disjoint_from_the_evaluation_set():
    assert not set(sentences(5000, seed=3)) & set(SENTENCES)
    assert not set(ESPEAK_VOICES) & set(VOICES)

@pytest.mark.parametrize("src,max_freq", [("espeak", 11025), ("piper", 11025), ("flite", 8000), ("synth", 24000)])
def test_sources_carry_their_band(src, max_freq):
    why = available_sources()[src]
    if why: pytest.skip(why)
    x, mf = speech_clip(src, "The wooden ladder fell near the station.", 48000, np.random.default_rng(0))
    assert mf == max_freq and x.dtype == np.float32 and 0.5 < len(x) / 48000 < 8 and np.abs(x).max() <= 10 ** (-1 / 20) + 1e-6

def test_cli_writes_a_deepfilternet_corpus(tmp_path):
    out = tmp_path / "corpus"
    assert make_corpus_cli([str(out), "--sources", "synth", "--real", "none", "--minutes", "0.2", "--noise-minutes", "0.1", "--rirs", "2"]) == 0
    cfg = read_dataset_cfg(out / "dataset.cfg", out)
    kinds = {Hdf5Clips(out / f).kind for rows in cfg.values() for f, _ in rows}
    assert kinds == {"speech", "noise", "rir"}
    assert json.loads((out / "corpus.json").read_text())["sources"] == ["synth"]
    assert not list(tmp_path.glob(".corpus*")), "no temporary folder left"

def test_libdfdata_reads_it(tmp_path):
    PytorchDataLoader = pytest.importorskip("libdfdata", reason="DeepFilterNet's loader is not installed").PytorchDataLoader
    from loguru import logger; logger.disable("libdfdata")
    d = make_corpus(tmp_path / "c", minutes=0.2, sources=("synth",), noise_minutes=0.1, n_rirs=2, progress=lambda m: None)
    dl = PytorchDataLoader(str(d), str(d / "dataset.cfg"), sr=48000, batch_size=2, max_len_s=1.0, fft_size=960, hop_size=480,
                           nb_erb=32, nb_spec=96, num_workers=1, p_reverb=0.5, seed=0, log_level="error")
    b = next(iter(dl.iter_epoch("train", 0)))
    assert tuple(b.feat_erb.shape[-1:]) == (32,) and np.isfinite(b.noisy.numpy()).all()

def test_refusals(tmp_path, capsys):
    (tmp_path / "exists").mkdir()
    assert make_corpus_cli([str(tmp_path / "exists"), "--sources", "synth", "--real", "none"]) == 2
    assert "exists" in capsys.readouterr().err
    assert make_corpus_cli([str(tmp_path / "a"), "--sources", "opera", "--real", "none"]) == 2
    assert "unknown" in capsys.readouterr().err
    assert make_corpus_cli([str(tmp_path / "b"), "--sources", "synth", "--real", "none", "--hold-out", "piper"]) == 2
    assert make_corpus_cli([str(tmp_path / "c"), "--sources", "synth", "--real", "none", "--minutes", "0"]) == 2
    assert not any((tmp_path / n).exists() for n in "abc")
    assert set(SYNTHESISERS) == {"espeak", "piper", "flite", "synth"} and SOURCES is SYNTHESISERS   # the old name stays
