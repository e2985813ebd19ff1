"""Discriminators and AdversarialLossCalculator: gradients reach the enhancer through the synthesis, a discriminator
learns to tell clean from noisy speech, warm-up switches exactly, configs round-trip and bad ones fail clearly."""
import numpy as np, pytest, torch, yaml
from dfnb.discriminators import (DfNet4Discriminator, build_discriminator, AdversarialLossCalculator,
                                 DISCRIMINATOR_DEFAULTS)
from dfnb.dfnet4 import DfNet4, DfNet4Config
from dfnb.stft_erb import DfState, synthesis
from dfnb.signals import espeak, speech_like, pink_noise, mix_at_snr

SMALL = {"dfnet4": lambda: DfNet4Discriminator(hidden_channels=(8, 16, 32), num_scales=2),
         "ms-stft": lambda: build_discriminator(dict(n_ffts=[512, 256], stft_filters=8, use_msd=False, use_mpd=False)),
         "msd": lambda: build_discriminator(dict(n_ffts=[], use_msd=True, msd_scales=[1, 2], use_mpd=False)),
         "mpd": lambda: build_discriminator(dict(n_ffts=[], use_msd=False, mpd_periods=[2, 3], mpd_channels=[8, 16, 32, 32, 32]))}

@pytest.mark.parametrize("name", list(SMALL))
def test_gradients_reach_dfnet4_through_the_synthesis(name):
    torch.manual_seed(0)
    m = DfNet4(DfNet4Config.tiny())
    st = DfState(m.df_params)
    x = torch.from_numpy(speech_like(0.5, seed=1))[None]
    spec, fe, fs = st.features(x)
    enh, _ = m.enhance_spec(spec, fe, fs)
    fake = synthesis(enh, m.df_params)                                     # differentiable waveform
    loss = AdversarialLossCalculator().compute_generator_loss(SMALL[name](), x[:, : fake.shape[-1]], fake)["loss"]
    loss.backward()
    for p in (m.erb_conv0.conv.weight, m.df_out.weight, m.enc_layers[0].mixer.in_proj.weight):
        assert p.grad is not None and p.grad.abs().sum() > 0, name

def _segments(n, seconds=0.25, seed=0):
    "Clean eSpeak NG segments and the same in pink noise at 0 dB."
    s = espeak("Discriminators learn what clean speech sounds like, and what noise added to it does to that.")
    rng = np.random.default_rng(seed); L = int(seconds * 48000); clean, noisy = [], []
    for i in range(n):
        a = rng.integers(0, len(s) - L); c = s[a:a + L]
        if np.abs(c).max() < 1e-3: c = s[len(s) // 2: len(s) // 2 + L]
        clean.append(c); noisy.append(mix_at_snr(c, pink_noise(L, seed=seed * 1000 + i), 0.0)[0])
    return torch.from_numpy(np.stack(clean).astype(np.float32)), torch.from_numpy(np.stack(noisy).astype(np.float32))

def test_a_discriminator_learns_clean_from_noisy():
    torch.manual_seed(0)
    d = DfNet4Discriminator(hidden_channels=(16, 32, 64), num_scales=2)
    calc = AdversarialLossCalculator(loss="hinge")
    opt = torch.optim.Adam(d.parameters(), 1e-3, betas=(0.5, 0.9))
    for step in range(200):
        c, n = _segments(8, seed=step)
        out = calc.compute_discriminator_loss(d, c, n)
        opt.zero_grad(); out["loss"].backward(); opt.step()
    c, n = _segments(32, seed=10_000)                                      # held-out segments
    with torch.no_grad(): ev = calc.compute_discriminator_loss(d, c, n)
    acc = (float(ev["real_accuracy"]) + float(ev["fake_accuracy"])) / 2
    assert acc > 0.9, acc

@pytest.mark.parametrize("loss", ["hinge", "lsgan"])
def test_warmup_switches_exactly_at_the_step(loss):
    torch.manual_seed(0)
    d = SMALL["dfnet4"](); calc = AdversarialLossCalculator(warmup_steps=100, loss=loss)
    real, fake = torch.randn(2, 4800), torch.randn(2, 4800, requires_grad=True)
    for step in (0, 99):
        g, dl = calc.compute_generator_loss(d, real, fake, global_step=step), calc.compute_discriminator_loss(d, real, fake, global_step=step)
        assert all(float(v) == 0.0 and not v.requires_grad for v in (*g.values(), *dl.values()))
    assert all(p.grad is None for p in d.parameters())                     # the discriminator was never run
    g = calc.compute_generator_loss(d, real, fake, global_step=100)
    assert float(g["adversarial"]) > 0 and float(g["feature_matching"]) > 0 and g["loss"].requires_grad
    g["loss"].backward(); assert fake.grad.abs().sum() > 0
    assert calc.compute_discriminator_loss(d, real, fake, global_step=100)["loss"].requires_grad

def test_real_features_carry_no_gradient_and_fake_is_detached_for_d():
    d = SMALL["dfnet4"](); calc = AdversarialLossCalculator()
    real = torch.randn(2, 4800, requires_grad=True); fake = torch.randn(2, 4800, requires_grad=True)
    calc.compute_generator_loss(d, real, fake)["loss"].backward()
    assert real.grad is None and fake.grad is not None
    fake.grad = None
    calc.compute_discriminator_loss(d, real.detach(), fake)["loss"].backward()
    assert fake.grad is None

def test_config_round_trip_and_target(tmp_path):
    cfg = dict(n_ffts=[512, 256], stft_filters=8, use_msd=True, msd_scales=[1], use_mpd=True, mpd_periods=[2], mpd_channels=[8, 8, 8, 8, 8])
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(cfg))
    a, b = build_discriminator(cfg), build_discriminator(tmp_path / "d.yaml")
    assert a.names == b.names == ["stft512", "stft256", "msd1", "mpd2"] and a.param_counts() == b.param_counts()
    assert yaml.safe_load(yaml.safe_dump(cfg)) == cfg
    (tmp_path / "t.yaml").write_text("_target_: dfnb.discriminators.DfNet4Discriminator\nhidden_channels: [8, 16]\nnum_scales: 2\n")
    t = build_discriminator(tmp_path / "t.yaml")
    assert isinstance(t, DfNet4Discriminator) and t.num_scales == 2
    assert sorted(DISCRIMINATOR_DEFAULTS) == sorted(["stft_filters", "in_channels", "n_ffts", "use_msd", "msd_scales", "use_mpd",
                                                     "mpd_periods", "mpd_channels", "weight_norm"])

@pytest.mark.parametrize("cfg, msg", [(dict(n_fft=[512]), "unknown key.*did you mean 'n_ffts'"),
                                      (dict(n_ffts=[], use_msd=False, use_mpd=False), "every family is off"),
                                      (dict(msd_scales=[]), "use_msd=True needs"), (dict(mpd_periods=[]), "use_mpd=True needs")])
def test_bad_configs(cfg, msg):
    with pytest.raises(ValueError, match=msg): build_discriminator(cfg)

def test_bad_calculator_arguments():
    with pytest.raises(ValueError, match="'hinge' or 'lsgan'"): AdversarialLossCalculator(loss="wgan")
    with pytest.raises(ValueError, match="warmup_steps"): AdversarialLossCalculator(warmup_steps=-1)
    with pytest.raises(TypeError, match="unexpected arguments"): AdversarialLossCalculator(warmup=3)
    with pytest.warns(DeprecationWarning, match="adversarial_warmup_steps"): AdversarialLossCalculator(adversarial_warmup_steps=7)
    with pytest.raises(ValueError, match="hidden_channels"): DfNet4Discriminator(hidden_channels=[])
