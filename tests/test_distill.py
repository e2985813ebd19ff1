"""DistillationLoss: zero for a copy of the teacher, gradients only into the student, a teacher whose parameters and
BatchNorm statistics never change, the tempered-gain term's gradient equal to T^2 BCE's, taps aligned by offset."""
import copy
import pytest, torch
import torch.nn.functional as F
from dfnb.distill import DistillationLoss, model_outputs, tempered_gain_kl, _common_taps
from dfnb.dfnet3 import load_official_dfnet3
from dfnb.dfnet4 import DfNet4, DfNet4Lite, DfNet4Config
from dfnb.stft_erb import DfState
from dfnb.signals import speech_like, pink_noise, mix_at_snr

@pytest.fixture(scope="module")
def feats():
    x = torch.from_numpy(mix_at_snr(speech_like(0.8, seed=3), pink_noise(38400, seed=4), 5)[0]).float()[None]
    return DfState().features(torch.cat([x, 0.5 * x]))

@pytest.fixture(scope="module")
def dfn3(): return load_official_dfnet3()

def test_copy_of_the_teacher_costs_nothing(dfn3, feats):
    kd = DistillationLoss(dfn3)
    t = kd.teacher_outputs(*feats)
    twin = copy.deepcopy(dfn3)
    assert float(kd(twin, model_outputs(twin, *feats), t)) == 0.0
    torch.manual_seed(0); other = DfNet4Lite()
    assert float(kd(other, model_outputs(other, *feats), t).detach()) > 0

def test_gradients_reach_only_the_student_and_the_teacher_never_changes(feats):
    torch.manual_seed(0)
    teacher = DfNet4(DfNet4Config.tiny())
    for m in teacher.modules():                                          # non-trivial BatchNorm statistics
        if isinstance(m, torch.nn.BatchNorm2d): m.running_mean.normal_(0, 0.1); m.running_var.uniform_(0.5, 2)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    kd = DistillationLoss(teacher).train()
    assert not teacher.training and not list(kd.parameters()) and not any(k.startswith("teacher") for k in kd.state_dict())
    student = DfNet4Lite().train(); opt = torch.optim.AdamW(student.parameters(), 1e-3)
    for _ in range(3):
        t = kd.teacher_outputs(*feats)
        loss = kd(student, model_outputs(student, *feats), t, supervised=torch.zeros(()))
        opt.zero_grad(); loss.backward(); opt.step()
        assert all(p.grad is None for p in teacher.parameters())
        assert sum(p.grad.abs().sum() for p in student.parameters() if p.grad is not None) > 0
    after = teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)         # weights and BN running stats alike

def test_alpha_blend(dfn3, feats):
    kd = DistillationLoss(dfn3, alpha_kd=0.25)
    torch.manual_seed(0); s = DfNet4Lite()
    out, t = model_outputs(s, *feats), kd.teacher_outputs(*feats)
    pure = kd(s, out, t); mixed = kd(s, out, t, supervised=torch.tensor(2.0))
    assert torch.isclose(mixed, 0.25 * pure + 0.75 * 2.0)

def test_tempered_gain_term():
    "Zero when equal; gradient equal to T^2 BCE(sigma(z_s/T), sigma(z_t/T)) (they differ by the teacher's entropy)."
    g = torch.rand(2, 5, 32, dtype=torch.float64) * 0.98 + 0.01
    assert float(tempered_gain_kl(g, g, 4.0)) == 0.0
    gs1 = (torch.rand(2, 5, 32, dtype=torch.float64) * 0.98 + 0.01).requires_grad_(); gs2 = gs1.detach().clone().requires_grad_()
    tempered_gain_kl(gs1, g, 4.0).backward()
    T = 4.0; zs, zt = torch.logit(gs2) / T, torch.logit(g) / T
    (T * T * F.binary_cross_entropy_with_logits(zs, torch.sigmoid(zt))).backward()
    assert torch.allclose(gs1.grad, gs2.grad, rtol=1e-9, atol=1e-12)

def test_taps_aligned_by_frame_offset():
    s = torch.arange(9.)[None].expand(3, 9)                             # order 9, lookahead 2: offsets -6..2
    t = torch.arange(5.)[None].expand(3, 5)                             # order 5, lookahead 2: offsets -2..2
    a, b = _common_taps(s, t, 2, 2)
    assert a[0].tolist() == [4, 5, 6, 7, 8] and b[0].tolist() == [0, 1, 2, 3, 4]

def test_bad_arguments(dfn3):
    with pytest.raises(ValueError, match="targets"): DistillationLoss(dfn3, targets=("mask",))
    with pytest.raises(ValueError, match="alpha_kd"): DistillationLoss(dfn3, alpha_kd=1.5)
    with pytest.raises(ValueError, match="temperature"): DistillationLoss(dfn3, temperature=0)
    with pytest.raises(TypeError, match="DfNet3, DfNet4 or OnnxDfNet3"): model_outputs(torch.nn.Linear(2, 2), None, None, None)
