"""dfnb.quantize: QAT prepare / convert on DFNet4Lite, gradients through fake-quant, the int8 QDQ streaming graph in
StreamingEnhancer, int8-vs-fp32 SNR on speech (>= 30 dB, the issue's bar; untrained seeded weights), clear errors.
The route needs only torch + onnxruntime (not torchao: see nbs/44_quantize.ipynb for why PT2E does not fit)."""
import json
import numpy as np
import pytest
import torch
from torch import nn
from dfnb.dfnet4 import DfNet4Lite
from dfnb.quantize import (prepare_qat, convert, export_int8, int8_snr, fake_quant, weight_scale, qat_layers, METHODS)
from dfnb.streaming import StreamingEnhancer


@pytest.fixture(scope="module")
def lite():
    torch.manual_seed(0)
    return DfNet4Lite().eval()


def _feats(m, T=12):
    g = torch.Generator().manual_seed(1)
    E, Fd = m.config.nb_erb, m.config.nb_df
    return torch.randn(1, T, E, generator=g) * 0.5, torch.complex(torch.randn(1, T, Fd, generator=g), torch.randn(1, T, Fd, generator=g)) * 0.1


def test_fake_quant_ste():
    x = torch.linspace(-1, 1, 11, requires_grad=True)
    y = fake_quant(x, torch.tensor(0.3), 0, -127, 127); y.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))
    assert (y - x).abs().max() <= 0.15 + 1e-6


def test_prepare_convert(lite):
    q = prepare_qat(lite).train()
    assert q is not lite and not hasattr(lite, "_qat") or not lite._qat
    ferb, fspec = _feats(lite)
    g, c = q(ferb, fspec); (g.mean() + c.abs().mean()).backward()
    grads = [l.parametrizations.weight.original.grad for l in qat_layers(q).values()]
    assert all(gr is not None for gr in grads) and sum(float(gr.abs().sum()) for gr in grads) > 0
    qm = convert(q)
    assert type(qm) is DfNet4Lite and not any(hasattr(l, "parametrizations") for l in qm.modules())
    qm2 = convert(q); assert torch.equal(qm2.emb_in.weight, qm.emb_in.weight)       # q itself still usable
    w = qm.emb_in.weight; s = weight_scale(w, 0)
    assert torch.allclose(w / s, torch.round(w / s), atol=1e-3)
    assert set(qm.act_ranges) == set(qat_layers(lite))


def test_bad_inputs(lite):
    with pytest.raises(TypeError, match="DfNet4"): prepare_qat(nn.Linear(3, 3))
    with pytest.raises(TypeError, match="DfNet4"): export_int8(nn.Linear(3, 3), "unused")
    with pytest.raises(ValueError, match="prepare_qat"): convert(lite)
    with pytest.raises(ValueError, match="already"): prepare_qat(prepare_qat(lite))


def test_int8_streaming_and_snr(lite, tmp_path):
    q = prepare_qat(lite).train()
    ferb, fspec = _feats(lite)
    with torch.no_grad(): q(ferb, fspec)                       # observe activation ranges once
    with pytest.raises(ValueError, match="method"): export_int8(q, tmp_path, method="fp16")
    dirs = {m: export_int8(q, tmp_path, method=m, export_fp32=(m == "qdq")) for m in METHODS}
    for m, d in dirs.items():
        se = StreamingEnhancer(d)
        assert se.stateful and se.process_frame(np.zeros(480, np.float32)).shape == (480,)
        assert json.loads((d / "dfnb_onnx.json").read_text())["quantization"]["method"] == m
        v = int8_snr(tmp_path, d, seconds=3.0)
        assert v >= 30, f"{m}: int8 vs fp32 SNR {v:.1f} dB < 30 dB"
    import onnx
    ops = [n.op_type for n in onnx.load(str(dirs["qdq"] / "full.onnx")).graph.node]
    assert ops.count("QuantizeLinear") > 0 and ops.count("DequantizeLinear") > ops.count("QuantizeLinear")
