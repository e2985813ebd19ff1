"""One DeepFilterNet network, written once (issue 23): the encoder convolutions and the ERB decoder's climb back up are
`dfnb.blocks.encode_convs` / `erb_unet` for DFN3 and DFNet4; DFNet4's sequence, chunk, step, fused-frame and fused-row
(ONNX) forms are one function, `DfNet4._run`, over the model's blocks or their fused snapshots. Checked here: the
shipped checkpoints and the official DFN3 weights load unchanged and give the outputs they gave before the network was
merged (fingerprints recorded with the code of commit 7868de5, before the change), and the layouts agree frame by frame."""
import pytest
import torch
from torch import nn

from dfnb.checkpoint import load_model, _read
from dfnb.dfnet3 import DfNet3, load_official_dfnet3
from dfnb.dfnet4 import DfNet4, DfNet4Config, FusedStep
from dfnb.blocks import DeepFilterParams, encode_convs
from dfnb.official import DfNet3Params
from dfnb.stft_erb import rdft_matrices
from dfnb.onnx import FrameDsp

# |enhanced spectrum| summed, lsnr summed, on `_inputs()`: recorded with the code before the merge
BEFORE = {"dfnet4": (5663.40673828125, 103.55589294433594), "dfnet4lite": (2289.6513671875, 111.19185638427734),
          "dfnet3": (2917.76513671875, -197.3612518310547)}


def _inputs(E=32, Fd=96, T=20, seed=7):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(1, T, E, generator=g), torch.view_as_complex(torch.randn(1, T, Fd, 2, generator=g)),
            torch.view_as_complex(torch.randn(1, T, 481, 2, generator=g)))


def _fingerprint(m):
    fe, fs, sp = _inputs()
    with torch.no_grad(): y, l = m.enhance_spec(sp, fe, fs)
    return torch.view_as_real(y).abs().sum().item(), l.sum().item()


@pytest.mark.parametrize("name", ["dfnet4", "dfnet4lite"])
def test_shipped_checkpoints_load_unchanged(name):
    "Same state-dict keys as the file (strict load), same outputs as before the merge (float32 sums of 20 frames: 1e-6 relative)."
    path = f"dfnb/models/{name}.pt"
    m = load_model(path).eval()
    assert set(m.state_dict()) == set(_read(path)["model_state_dict"])
    got = _fingerprint(m)
    for a, b in zip(got, BEFORE[name]): assert abs(a - b) <= 1e-6 * abs(b) + 1e-6, (name, got, BEFORE[name])


def test_official_dfnet3_loads_unchanged():
    m = load_official_dfnet3()
    got = _fingerprint(m)
    for a, b in zip(got, BEFORE["dfnet3"]): assert abs(a - b) <= 1e-6 * abs(b) + 1e-6, (got, BEFORE["dfnet3"])
    assert m.p is m.config and isinstance(m.config, DfNet3Params)            # `.p`: the old name, kept as an alias


@pytest.mark.parametrize("opts", [{}, dict(hybrid_encoder=True, multi_res_df=True, adaptive_df_order=True)])
def test_every_layout_is_the_same_network(opts):
    "Sequence == module-by-module step == fused frame == fused row, frame by frame (1e-5: float32, different op order)."
    torch.manual_seed(0)
    m = DfNet4(DfNet4Config.tiny(**opts)).eval()
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d): mod.running_mean.normal_(0, .1); mod.running_var.uniform_(.5, 2)
    c, T = m.config, 12
    fe, fs = torch.randn(1, T, c.nb_erb), 0.5 * torch.randn(1, T, c.nb_df, dtype=torch.cfloat)
    frame, row = FusedStep(m), FusedStep(m, layout="row")
    assert row.plain_df == (not opts)
    with torch.no_grad():
        st, sf, sr = m.init_state(1), frame.init_state(1), row.init_state(1)
        for t in range(T):
            ferb, fspec = fe[:, t][:, None, None], torch.view_as_real(fs[:, t])[:, None].permute(0, 3, 1, 2)   # [1,1,1,E], [1,2,1,Fd]
            g0, c0, l0, st = m._run(m, "seq", ferb, fspec, st)
            g1, c1, l1, sf = frame(ferb, fspec, sf)
            g2, c2, l2, sr = row(ferb, fspec, sr)
            torch.testing.assert_close(g1, g0[:, 0], atol=1e-5, rtol=0); torch.testing.assert_close(c1, c0[:, 0], atol=1e-5, rtol=0)
            torch.testing.assert_close(g2[:, 0], g0[0, 0], atol=1e-5, rtol=0)
            torch.testing.assert_close(c2.reshape(m.O, 2, c.nb_df).permute(2, 0, 1), c0[0, 0], atol=1e-5, rtol=0)
            torch.testing.assert_close(l2.reshape(1), l0[:, 0], atol=1e-4, rtol=0)


def test_dfn3_encoder_is_the_shared_one():
    "DFN3's encoder convolutions are `encode_convs` on its blocks: the same e0..e3, c0 and (before the GRU) embedding."
    torch.manual_seed(0)
    m = DfNet3().eval()
    fe, fs = torch.randn(1, 1, 9, 32), torch.randn(1, 2, 9, 96)
    with torch.no_grad():
        (e0, e1, e2, e3), c0, emb = encode_convs(m.enc, fe, fs)
        out = m.enc(fe, fs)
        gru_emb, _ = m.enc.emb_gru(emb)
    for a, b in zip((e0, e1, e2, e3, gru_emb, c0), out[:6]): torch.testing.assert_close(a, b)


def test_latency_and_dft_homes():
    assert DfNet3Params().latency_samples == 1440 and DeepFilterParams(conv_lookahead=1, df_lookahead=1).latency_samples == 960
    dsp = FrameDsp(DfNet3Params(), 5, 2)
    assert (dsp.N1, dsp.N2) == (rdft_matrices(960)["n1"], rdft_matrices(960)["n2"]) == (30, 32)
    x = torch.randn(960)
    re, im = dsp.rfft(x)
    X = torch.fft.rfft(x.double())
    torch.testing.assert_close(re.double(), X.real, atol=1e-3, rtol=0); torch.testing.assert_close(im.double(), X.imag, atol=1e-3, rtol=0)
