"""dfnb-train from the command line: a smoke run of each option (distillation, GAN, QAT), a 2 + 2 step run with a
resume bit-identical to 4 straight steps, skipped non-finite batches, and the refusals of bad input."""
import json
import pytest, torch
from dfnb.checkpoint import load_model
from dfnb.train import train_cli, Trainer, TrainConfig, build_model, epoch_batches
from dfnb import dfnet4

TINY = json.dumps(dfnet4.TINY)
SMALL_GAN = json.dumps({"discriminator": {"n_ffts": [256], "stft_filters": 4, "use_msd": False, "use_mpd": False}, "loss": {"warmup_steps": 1}})

def args(corpus, out, *extra, steps=3):
    return [str(corpus / "dataset.cfg"), str(corpus), str(out), "--model-type", "dfnet4lite", "--model-config", TINY,
            "--no-progress", "--threads", "2", "--set", "batch_size=2", "--set", "batch_size_scheduling=0/2",
            "--set", "max_sample_len_s=0.6", "--set", f"max_steps={steps}", "--set", "seed=0", *extra]

def steps(out): return [r["step"] for r in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if "lr" in r]

def test_smoke_run(corpus, tmp_path):
    assert train_cli(args(corpus, tmp_path / "run")) == 0
    assert steps(tmp_path / "run") == [0, 1, 2]
    m = load_model(tmp_path / "run" / "checkpoints" / "last.pt")
    assert type(m).__name__ == "DfNet4Lite" and m.config.conv_ch == 8
    meta = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)["metadata"]
    assert meta["command"].startswith("dfnb-train ") and meta["train_state"]["step"] == 3

@pytest.mark.parametrize("extra", [["--teacher", "dfnet3"], ["--gan", SMALL_GAN], ["--qat"]], ids=["teacher", "gan", "qat"])
def test_options_train_and_resume(corpus, tmp_path, extra):
    out = tmp_path / "run"
    assert train_cli(args(corpus, out, *extra, "--stop-at", "1")) == 0
    assert train_cli(args(corpus, out, *extra, "--resume")) == 0
    assert steps(out) == [0, 1, 2]
    log = [r for r in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if "lr" in r]
    if "--teacher" in extra: assert "kd_erb_gains" in log[-1]
    if "--gan" in extra: assert log[-1]["disc_loss"] > 0 and log[0]["gen_adv"] == 0          # warm-up: step 0 without it
    assert type(load_model(out / "checkpoints" / "last.pt")).__name__ == "DfNet4Lite"

def test_resume_is_bit_identical(corpus, tmp_path):
    "2 steps, stop, resume, 2 more == 4 steps straight: weights, optimiser state and log, bit for bit."
    a, b = tmp_path / "straight", tmp_path / "resumed"
    assert train_cli(args(corpus, a, steps=4)) == 0
    assert train_cli(args(corpus, b, "--stop-at", "2", steps=4)) == 0
    assert train_cli(args(corpus, b, "--resume", steps=4)) == 0
    ca, cb = (torch.load(d / "checkpoints" / "last.pt", weights_only=True) for d in (a, b))
    for k, v in ca["model_state_dict"].items(): assert torch.equal(v, cb["model_state_dict"][k]), k
    sa, sb = ca["optimizer_state_dict"]["state"], cb["optimizer_state_dict"]["state"]
    assert all(torch.equal(sa[i][k], sb[i][k]) for i in sa for k in sa[i])
    strip = lambda d: [{k: v for k, v in json.loads(l).items() if k not in ("sec", "audio_s_per_s")} for l in (d / "log.jsonl").read_text().splitlines()]
    assert strip(a) == strip(b)

def test_non_finite_batches_are_skipped_then_abort(corpus, tmp_path):
    torch.manual_seed(0)
    cfg = TrainConfig(batch_size=2, batch_size_scheduling="0/2", max_sample_len_s=0.6, max_nans=1, seed=0)
    t = Trainer(build_model("dfnet4lite", json.loads(TINY)), corpus / "dataset.cfg", corpus, tmp_path / "run", cfg)
    b = t.collate([t.train_ds[i] for i in epoch_batches(len(t.train_ds), 2, 0, 0)[0]])
    before = {k: v.clone() for k, v in t.base.state_dict().items()}
    bad = dict(b, feat_erb=b["feat_erb"].clone().fill_(float("nan")))
    rec = t.train_step(bad)
    assert rec["skipped"] and t.n_skipped == 1
    assert all(torch.equal(v, t.base.state_dict()[k]) for k, v in before.items()), "a skipped batch changes nothing"
    assert "skipped" not in t.train_step(b)
    with pytest.raises(FloatingPointError, match="non-finite batches"): t.train_step(bad)

def test_refusals(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    assert train_cli(args(corpus, out, steps=1)) == 0
    assert train_cli(args(corpus, out, steps=1)) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert train_cli(args(corpus, tmp_path / "new", "--resume")) == 2
    assert "does not exist" in capsys.readouterr().err
    assert train_cli(args(corpus, tmp_path / "x", "--set", "batch_sise=4")) == 2
    assert "unknown settings" in capsys.readouterr().err
    assert train_cli(args(corpus, tmp_path / "g", "--gan", '{"discrimnator": {}}')) == 2
    assert "unknown keys" in capsys.readouterr().err
    assert train_cli([str(tmp_path / "no.cfg"), str(corpus), str(tmp_path / "y")]) == 2
    assert "no dataset config" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()

def test_libdfdata_loader(corpus, tmp_path):
    "DeepFilterNet's own Rust loader feeds the same trainer (skipped where its wheel is not installed)."
    pytest.importorskip("libdfdata", reason="DeepFilterNet's loader is not installed: pip install --no-deps DeepFilterDataLoader==0.5.6 loguru")
    from loguru import logger; logger.disable("libdfdata")
    assert train_cli(args(corpus, tmp_path / "run", "--loader", "libdfdata", steps=2)) == 0
    assert steps(tmp_path / "run") == [0, 1]

def test_asr_loss_option(corpus, tmp_path):
    "--asr with a Whisper checkpoint file (random weights, built offline) adds an ASRLoss term to the training loss."
    pytest.importorskip("whisper", reason="openai-whisper is not installed: pip install 'dfnb[asr]'")
    from dataclasses import asdict
    from dfnb.whisper_adapter import random_whisper
    w = random_whisper("tiny", n_audio_layer=2, n_text_layer=1)
    torch.save({"dims": asdict(w.dims), "model_state_dict": w.state_dict()}, tmp_path / "tiny.pt")
    assert train_cli(args(corpus, tmp_path / "run", "--asr", str(tmp_path / "tiny.pt"), "--asr-factor", "0.5", steps=1)) == 0
    rec = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[0])
    assert rec["ASRLoss"] > 0

def test_reads_deepfilternet_config_ini(corpus, tmp_path, capsys):
    "DeepFilterNet3's own config.ini (its [train], [optim], [distortion] and loss sections), overridden by --set."
    from dfnb.dfnet3 import official_model_dir
    ini = official_model_dir() / "config.ini"
    assert train_cli(args(corpus, tmp_path / "run", "--config", str(ini), "--set", "num_workers=0", steps=1)) == 0
    assert "ignoring DeepFilterNet-only settings" in capsys.readouterr().err
    rec = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[0])
    assert {"MultiResSpecLoss", "LocalSnrLoss"} <= set(rec)
