"""dfnb-train under torchrun with 2 CPU processes (gloo): one DDP step equals one single-process step on the
concatenated batch, and a 2-process run trains, checkpoints and resumes."""
import json, os, subprocess, sys
from pathlib import Path
import pytest, torch
from dfnb.corpus import make_corpus
from dfnb.checkpoint import load_model
from dfnb import dfnet4

HERE = Path(__file__).parent

@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("ddp") / "corpus", minutes=0.3, sources=("synth",), noise_minutes=0.1,
                       n_rirs=2, progress=lambda m: None)

def _env():
    return os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")])}

def _torchrun(*args, timeout=600):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *map(str, args)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env())
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r

def test_ddp_step_equals_single_process_step(corpus, tmp_path):
    """Loss, gradients (<= 1e-6 relative to each tensor's largest) and parameters after AdamW's step, with DFN3's own
    loss, in float64. Not float32: that loss's gradient is ill-conditioned near silent bins (|z|^0.3 has slope
    |z|^-0.7), and a 1e-7 relative change of the input features moves some gradients by 3e-3 (measured), so the
    float32 rounding of another reduction order (BatchNorm's statistics over 2 processes) cannot stay under 1e-6.
    In float64 the same amplification leaves ~1e-9."""
    one, two = tmp_path / "one.pt", tmp_path / "two.pt"
    r = subprocess.run([sys.executable, str(HERE / "_train_ddp_step.py"), str(corpus), str(one)], capture_output=True,
                       text=True, timeout=600, env=_env())
    assert r.returncode == 0, r.stderr[-3000:]
    _torchrun(HERE / "_train_ddp_step.py", corpus, two)
    a, b = torch.load(one), torch.load(two)
    assert abs(a["loss"] - b["loss"]) <= 1e-6 * abs(a["loss"])
    for n, g in a["grads"].items():
        err = ((g - b["grads"][n]).abs().max() / g.abs().max().clamp_min(1e-30)).item()
        assert err <= 1e-6, (n, err)
    for n, p in a["params"].items():
        assert (p - b["params"][n]).abs().max() <= 1e-6, n
    for n, v in a["buffers"].items():                           # BatchNorm running statistics: the whole batch's
        if v.is_floating_point(): assert (v - b["buffers"][n]).abs().max() <= 1e-5 * (1 + v.abs().max()), n

def test_torchrun_trains_and_resumes(corpus, tmp_path):
    out = tmp_path / "run"
    common = [corpus / "dataset.cfg", corpus, out, "--model-type", "dfnet4lite", "--no-progress",
              "--model-config", json.dumps(dfnet4.TINY),
              "--set", "batch_size=4", "--set", "batch_size_scheduling=0/4", "--set", "max_sample_len_s=1.0",
              "--set", "max_steps=4", "--set", "seed=0"]
    _torchrun("-m", "dfnb.train", *common, "--stop-at", "2")
    log = [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == [0, 1]
    _torchrun("-m", "dfnb.train", *common, "--resume")
    log = [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == [0, 1, 2, 3]
    m = load_model(out / "checkpoints" / "last.pt")
    assert type(m).__name__ == "DfNet4Lite"
    assert not list((out / "checkpoints").glob(".*")), "no temporary files left"
