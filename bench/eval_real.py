"""Noisy, DeepFilterNet3 (official weights), DfNet4Lite and (optionally) DfNet4 on held-out *real* recordings (issue 22):
voices and noise families that no training split of `runs/corpus_real` holds.

* Mixtures: klettres test voices (en, en_GB, he, hu; measured bandwidth >= 10 kHz: the full-band group, for quality
  figures) and the asterisk telephone voices (en, es at 3.5 kHz, en G.722 at 7 kHz: the band-limited group), short
  clips joined into utterances of about 5 s, in the test-only noise families (typing, fillets-sfx, openttd-nature,
  openttd-toyland, the synthetic bandpass and machine noises, and babble of four held-out klettres voices) at
  0/5/10/20 dB SNR, drawn from one seed. PESQ (wide band), STOI, SI-SDR and DNSMOS OVRL; the share of DFN3's PESQ gain
  over noisy that each dfnb model keeps.
* Transparency on clean held-out voices: SI-SDR and band gains (output/input band energy, only bands inside the
  clip's measured bandwidth) at -45/-35/-25/-10 dBFS RMS; the 20 dB SNR rule (output SI-SDR never below input
  SI-SDR, worst case); level equivariance 20 log10 ||y(a x)/a - y(x)|| / ||y(x)|| for a = 3 and 0.1, after 4 s.

    .venv/bin/python bench/eval_real.py [--lite dfnet4lite|PATH] [--full PATH] [--corpus runs/corpus_real] [--quick]

Writes bench/results/eval_real.md (tables) and .json (per-item rows). Single-threaded.
The measurement helpers (`band_gains`, `transparency`, `equivariance`, `GOALS`) are used by tests/test_transparency.py.
"""
import argparse, os, re, time
if __name__ == "__main__": os.environ.setdefault("OMP_NUM_THREADS", "1"); os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
from pathlib import Path
import numpy as np

SR = 48000
SNRS = (0, 5, 10, 20)
LEVELS_DBFS = (-45, -35, -25, -10)
BANDS = ((0, 1000), (1000, 2000), (2000, 4000), (4000, 8000), (8000, 12000), (12000, 16000), (16000, 20000))
GOALS = dict(si_sdr_db=25.0, band_gain_db=1.0, band_max_hz=20000, snr20_margin_db=0.0, equivariance_db=-30.0)
EQ_SKIP_S = 4.0                        # equivariance is measured after the first 4 s (the models' state settles)
UTT_MIN_S, UTT_MAX_S = 4.6, 5.4        # one DNSMOS window (9.01 s after the challenge's doubling) per utterance
FULLBAND_MIN_HZ = 10000
NOISE_FAMILIES = ("typing", "fillets-sfx", "openttd-nature", "openttd-toyland", "bandpass", "machine", "babble")


# ----------------------------------------------------------------------------------------------- measurements
def band_gains(x, y, max_freq: float = SR / 2, sr: int = SR, bands=BANDS) -> dict:
    "Output/input energy in dB per band `(lo, hi)` Hz, for the bands with `hi <= max_freq` (inside the clip's bandwidth)."
    X = np.abs(np.fft.rfft(np.asarray(x, np.float64))) ** 2; Y = np.abs(np.fft.rfft(np.asarray(y, np.float64))) ** 2
    f = np.fft.rfftfreq(len(x), 1 / sr)
    out = {}
    for lo, hi in bands:
        if hi > max_freq: continue
        m = (f >= lo) & (f < hi)
        out[f"{lo // 1000}-{hi // 1000}k"] = float(10 * np.log10(max(Y[m].sum(), 1e-30) / max(X[m].sum(), 1e-30)))
    return out

def at_dbfs(x, dbfs: float) -> np.ndarray:
    "`x` scaled to RMS `dbfs` dB re full scale (RMS 1)."
    x = np.asarray(x, np.float64)
    return (x * 10 ** (dbfs / 20) / np.sqrt(np.mean(x ** 2))).astype(np.float32)

def transparency(fn, x, max_freq: float = SR / 2, levels=LEVELS_DBFS) -> list[dict]:
    "For clean `x` at each RMS level: SI-SDR of `fn(x)` and its band gains (within `max_freq`), and the worst |gain|."
    from dfnb.metrics import si_sdr
    rows = []
    for lv in levels:
        xi = at_dbfs(x, lv); y = fn(xi); g = band_gains(xi, y, max_freq)
        worst = max(g.values(), key=abs)
        rows.append(dict(level_dbfs=lv, si_sdr=si_sdr(xi, y), gains=g, worst_gain_db=worst))
    return rows

def equivariance(fn, x, factors=(3.0, 0.1), skip_s: float = EQ_SKIP_S, sr: int = SR) -> dict:
    "20 log10 ||fn(a x)/a - fn(x)|| / ||fn(x)|| for each factor a, on the samples after `skip_s` s."
    x = np.asarray(x, np.float32); s = int(skip_s * sr)
    if len(x) <= s + sr // 2: raise ValueError(f"equivariance: need more than {skip_s + 0.5} s of audio, got {len(x) / sr:.2f} s")
    y = np.asarray(fn(x), np.float64)[s:]
    out = {}
    for a in factors:
        ya = np.asarray(fn((a * x).astype(np.float32)), np.float64)[s:] / a
        out[f"x{a:g}"] = float(20 * np.log10(max(np.linalg.norm(ya - y), 1e-30) / max(np.linalg.norm(y), 1e-30)))
    return out


# ----------------------------------------------------------------------------------------------- the held-out data
def _lang(key: str) -> str: return "en_GB" if key.startswith("en_GB") else key.split("_")[0]

def klettres_pools(corpus: Path, min_hz: int = 0, max_hz: int = 10 ** 9) -> dict:
    "`{language: [(Hdf5Clips, key), ...]}` of the klettres test clips whose measured bandwidth is in [min_hz, max_hz]."
    from dfnb.data import Hdf5Clips
    pools = {}
    for f in sorted(corpus.glob("speech_klettres_test_bw*.hdf5")):
        c = Hdf5Clips(f)
        if not min_hz <= c.max_freq <= max_hz: continue
        for k in c.keys: pools.setdefault(_lang(k), []).append((c, k))
    return pools

def asterisk_pools(corpus: Path) -> dict:
    "`{voice: [(Hdf5Clips, key), ...]}` of the asterisk test prompts 0.8..5.4 s long (tones and long prompts left out)."
    from dfnb.data import Hdf5Clips
    pools = {}
    for f in sorted(corpus.glob("speech_asterisk-*_test_bw*.hdf5")):
        c = Hdf5Clips(f); name = re.match(r"speech_(asterisk-[^_]+)_test_bw(\d+)", f.stem)
        keep = [(c, k) for k in c.keys if 0.8 * SR <= c.n_samples[k] <= UTT_MAX_S * SR and "tone" not in k]
        if len(keep) >= 4: pools[f"{name[1]}@{int(name[2]) // 1000 if int(name[2]) % 1000 == 0 else int(name[2]) / 1000}k"] = keep
    return pools

def _mono(c, k) -> np.ndarray: return np.asarray(c[k], np.float64).mean(0)

def utterance(pool, rng, min_s: float = UTT_MIN_S, max_s: float = UTT_MAX_S):
    """Clips of `pool` (one voice) drawn without repeats, each at the same RMS, joined with 80..200 ms pauses until
    `min_s` s, cut at `max_s` s (20 ms fade); returns `(audio float32 at -25 dBFS, bandwidth Hz, keys)`."""
    order = rng.permutation(len(pool)); parts, keys, bw, n = [], [], SR // 2, 0
    for i in order:
        c, k = pool[int(i)]; x = _mono(c, k)
        if not np.any(x): continue
        parts += [at_dbfs(x, -25).astype(np.float64), np.zeros(int(rng.uniform(0.08, 0.2) * SR))]
        keys.append(k); bw = min(bw, c.max_freq); n += len(parts[-2]) + len(parts[-1])
        if n >= min_s * SR: break
    y = np.concatenate(parts)[: int(max_s * SR)]
    f = int(0.02 * SR); y[-f:] *= np.linspace(1, 0, f)
    return at_dbfs(y, -25), int(bw), keys

def _segment(x, n, rng) -> np.ndarray:
    "`n` samples of `x` from a random start (tiled when `x` is shorter)."
    if len(x) < n: x = np.tile(x, -(-n // len(x)) + 1)
    s = int(rng.integers(0, len(x) - n + 1))
    return x[s:s + n]

def noise_pools(corpus: Path) -> dict:
    "`{family: [(Hdf5Clips, key), ...]}` for the test-only noise families (babble is made from voices instead)."
    from dfnb.data import Hdf5Clips
    out = {}
    for fam in ("typing", "fillets-sfx", "openttd-nature", "openttd-toyland"):
        c = Hdf5Clips(corpus / f"noise_{fam}_test.hdf5"); out[fam] = [(c, k) for k in c.keys]
    c = Hdf5Clips(corpus / "noise_test.hdf5")
    for fam in ("bandpass", "machine"): out[fam] = [(c, k) for k in c.keys if k.startswith(fam)]
    return out

def babble(n: int, voices: dict, exclude: str, rng, talkers: int = 4) -> np.ndarray:
    "`talkers` held-out klettres voices (languages other than `exclude`, clips joined without pauses), each at the same RMS."
    langs = [l for l in sorted(voices) if l != exclude]
    out = np.zeros(n)
    for t in range(talkers):
        pool = voices[langs[t % len(langs)]]; parts, m = [], 0
        while m < n + SR:
            c, k = pool[int(rng.integers(len(pool)))]; x = _mono(c, k)
            if np.any(x): parts.append(at_dbfs(x, -25)); m += len(x)
        out += at_dbfs(_segment(np.concatenate(parts), n, rng), -25)
    return out

def make_items(corpus: Path, seed: int = 0, n_utt: int = 2, n_utt_bl: int = 1, snrs=SNRS, families=NOISE_FAMILIES) -> list[dict]:
    """The mixture set: for each group (full band, band-limited), family, SNR and utterance a dict with `id`, `group`,
    `voice`, `bw`, `family`, `snr`, `clean`, `noisy`; deterministic for `seed`."""
    from dfnb.signals import mix_at_snr
    rng = np.random.default_rng(seed)
    full, bl = klettres_pools(corpus, FULLBAND_MIN_HZ), asterisk_pools(corpus)
    all_voices, noises = klettres_pools(corpus), noise_pools(corpus)
    items = []
    for group, pools, n in (("full-band", full, n_utt), ("band-limited", bl, n_utt_bl)):
        names = sorted(pools); j = 0
        for fam in families:
            for snr in snrs:
                for u in range(n):
                    voice = names[j % len(names)]; j += 1
                    clean, bw, keys = utterance(pools[voice], rng)
                    if fam == "babble": noise = babble(len(clean), all_voices, voice.split("@")[0], rng)
                    else:
                        c, k = noises[fam][int(rng.integers(len(noises[fam])))]
                        noise = _segment(_mono(c, k), len(clean), rng)
                    noisy, _ = mix_at_snr(clean.astype(np.float64), noise, float(snr))
                    peak = np.abs(noisy).max(); g = min(1.0, 0.9 / peak)
                    items.append(dict(id=f"{group}/{fam}/{snr:+d}/{u}", group=group, voice=voice, bw=bw, keys=keys, family=fam,
                                      snr=snr, clean=(g * clean).astype(np.float32), noisy=(g * noisy).astype(np.float32)))
    return items

def transparency_voices(corpus: Path, seed: int = 1, n: int = 2):
    "`n` clean full-band held-out voices (~5 s, different languages) and one ~9 s voice for the equivariance measure."
    rng = np.random.default_rng(seed); pools = klettres_pools(corpus, FULLBAND_MIN_HZ)
    names = sorted(pools, key=lambda l: -min(c.max_freq for c, _ in pools[l]))      # widest band first
    voices = [(l, *utterance(pools[l], rng)[:2]) for l in names[:n]]
    long_x, long_bw, _ = utterance(pools[names[0]], rng, 8.6, 9.4)
    return voices, (names[0], long_x, long_bw)


# ----------------------------------------------------------------------------------------------- the bench
def _fmt(v): return "n/a" if v is None or not np.isfinite(v) else f"{v:.3f}" if abs(v) < 10 else f"{v:.2f}"

def _mean(rows, sys_, m, **sel):
    v = [r[m] for r in rows if r["system"] == sys_ and all(r[k] == w for k, w in sel.items()) and r.get(m) is not None]
    return float(np.mean(v)) if v else None

def _gain_share(rows, sys_, ref="DFN3", base="noisy", **sel):
    gs, gr = _mean(rows, sys_, "pesq", **sel), _mean(rows, ref, "pesq", **sel); gb = _mean(rows, base, "pesq", **sel)
    return None if None in (gs, gr, gb) or gr - gb <= 0 else (gs - gb) / (gr - gb)

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=Path("runs/corpus_real"))
    ap.add_argument("--lite", default="dfnet4lite", help="DfNet4Lite: 'dfnet4lite' (shipped), a checkpoint or a run folder")
    ap.add_argument("--full", default=None, help="DfNet4: a checkpoint, a run folder or 'dfnet4' (optional)")
    ap.add_argument("--no-lite", action="store_true", help="leave DfNet4Lite out")
    ap.add_argument("--n-utt", type=int, default=2, help="full-band utterances per family and SNR")
    ap.add_argument("--n-utt-bl", type=int, default=1, help="band-limited (asterisk) utterances per family and SNR")
    ap.add_argument("--seed", type=int, default=0); ap.add_argument("--no-dnsmos", action="store_true")
    ap.add_argument("--quick", action="store_true", help="a tiny run: 1 utterance per family at 0 and 20 dB, 1 transparency voice")
    ap.add_argument("--name", default="eval_real", help="results file name in bench/results")
    a = ap.parse_args()
    import torch
    torch.set_num_threads(1)
    from dfnb.enhance import init_df, enhance
    from dfnb.metrics import pesq_wb, stoi, si_sdr, dnsmos
    from _results import table, write_results
    t_start = time.time()
    snrs = (0, 20) if a.quick else SNRS
    n_utt, n_bl, n_tv = (1, 1, 1) if a.quick else (a.n_utt, a.n_utt_bl, 2)

    specs = {"DFN3": "dfnet3"}
    if not a.no_lite: specs["DfNet4Lite"] = a.lite
    if a.full: specs["DfNet4"] = a.full
    models = {k: init_df(v)[:2] for k, v in specs.items()}
    fns = {"noisy": lambda x: x, **{k: (lambda m, st: lambda x: enhance(m, st, x))(m, st) for k, (m, st) in models.items()}}
    systems = list(fns)

    t0 = time.time()
    items = make_items(a.corpus, a.seed, n_utt, n_bl, snrs)
    print(f"{len(items)} mixtures ({sum(len(i['clean']) for i in items) / SR:.0f} s of audio) built in {time.time() - t0:.1f} s", flush=True)
    rows, timing = [], {s: 0.0 for s in systems}
    for it in items:
        for s in systems:
            t = time.time(); y = fns[s](it["noisy"]); timing[s] += time.time() - t
            c = it["clean"]
            r = dict(id=it["id"], group=it["group"], voice=it["voice"], bw=it["bw"], family=it["family"], snr=it["snr"], system=s,
                     pesq=pesq_wb(c, y), stoi=stoi(c, y), si_sdr=si_sdr(c, y),
                     ovrl=None if a.no_dnsmos else dnsmos(y, SR)["ovrl"])
            rows.append(r)
    t_mix = time.time() - t0
    print(f"mixtures scored in {t_mix:.0f} s (enhancement: " + ", ".join(f"{s} {v:.0f} s" for s, v in timing.items() if s != "noisy") + ")", flush=True)

    # the 20 dB SNR rule: output SI-SDR - input SI-SDR at 20 dB, worst case
    snr20 = {}
    for s in systems[1:]:
        d = [(next(q["si_sdr"] for q in rows if q["id"] == r["id"] and q["system"] == s) - r["si_sdr"], r["id"], r["group"])
             for r in rows if r["system"] == "noisy" and r["snr"] == 20]
        if d:
            w = min(d); snr20[s] = dict(worst_db=w[0], worst_id=w[1], violations=sum(v < 0 for v, *_ in d), n=len(d),
                                        worst_by_group={g: min(v for v, _, gg in d if gg == g) for g in dict.fromkeys(x[2] for x in d)})

    # transparency and equivariance on clean held-out voices
    t1 = time.time()
    voices, (eq_voice, eq_x, eq_bw) = transparency_voices(a.corpus, n=n_tv)
    trans, equi = {}, {}
    for s in systems[1:]:
        trans[s] = [dict(voice=v, bw=bw, **r) for v, x, bw in voices for r in transparency(fns[s], x, bw)]
        equi[s] = equivariance(fns[s], eq_x)
    t_tr = time.time() - t1
    print(f"transparency and equivariance in {t_tr:.0f} s", flush=True)

    # ---- tables
    body = []
    groups = [g for g in ("full-band", "band-limited") if any(r["group"] == g for r in rows)]
    M = ("pesq", "stoi", "si_sdr", "ovrl")
    head = ("system", "PESQ", "STOI", "SI-SDR", "DNSMOS OVRL")
    summary = {}
    for s in systems:
        fb = {m: _mean(rows, s, m, group="full-band") for m in M}
        summary[s] = dict(**fb, gain_share_full=_gain_share(rows, s, group="full-band") if s not in ("noisy", "DFN3") else None,
                          gain_share_bl=_gain_share(rows, s, group="band-limited") if s not in ("noisy", "DFN3") else None,
                          gain_share_all=_gain_share(rows, s) if s not in ("noisy", "DFN3") else None)
        if s in trans:
            tr = trans[s]
            summary[s].update(transp_si_sdr_min=min(r["si_sdr"] for r in tr), transp_worst_gain_db=max((r["worst_gain_db"] for r in tr), key=abs),
                              snr20_worst_db=snr20.get(s, {}).get("worst_db"), equiv_x3_db=equi[s]["x3"], equiv_x01_db=equi[s]["x0.1"])
    n_fb = sum(r["system"] == "noisy" and r["group"] == "full-band" for r in rows)
    n_bl_ = sum(r["system"] == "noisy" and r["group"] == "band-limited" for r in rows)
    fam_list = list(dict.fromkeys(r["family"] for r in rows))
    body += ["### Summary", f"Held-out voices and noise families of `{a.corpus}` (seed {a.seed}): {n_fb} full-band mixtures "
             f"(klettres {', '.join(sorted(klettres_pools(a.corpus, FULLBAND_MIN_HZ)))}, bandwidth >= {FULLBAND_MIN_HZ // 1000} kHz) and "
             f"{n_bl_} band-limited ones (asterisk {', '.join(sorted(asterisk_pools(a.corpus)))}), in {', '.join(fam_list)} at "
             f"{'/'.join(str(s) for s in snrs)} dB SNR; utterances {UTT_MIN_S}-{UTT_MAX_S} s. Quality figures: full-band group means. "
             f"Share of DFN3's PESQ gain = (system - noisy) / (DFN3 - noisy), mean PESQ over all families and SNRs. "
             f"Models: " + ", ".join(f"{k} = `{v}`" for k, v in specs.items()) + ".", ""]
    sh = ("system", "PESQ", "STOI", "SI-SDR", "OVRL", "PESQ gain share (full-band / band-limited / all)",
          "transparency SI-SDR min", "worst band gain", "20 dB rule worst", "equivariance x3 / x0.1")
    srows = []
    for s in systems:
        u = summary[s]
        share = "-" if u["gain_share_full"] is None and s in ("noisy", "DFN3") else " / ".join(
            "n/a" if v is None else f"{100 * v:.0f} %" for v in (u["gain_share_full"], u["gain_share_bl"], u["gain_share_all"]))
        if s == "DFN3": share = "100 % (reference)"
        tr = ("-",) * 4 if s == "noisy" else (f"{u['transp_si_sdr_min']:.1f} dB", f"{u['transp_worst_gain_db']:+.2f} dB",
                                             "n/a" if u["snr20_worst_db"] is None else f"{u['snr20_worst_db']:+.2f} dB",
                                             f"{u['equiv_x3_db']:.1f} / {u['equiv_x01_db']:.1f} dB")
        srows.append((s, *(_fmt(u[m]) for m in M), share, *tr))
    body += [table(sh, srows), "",
             f"Goals: transparency SI-SDR >= {GOALS['si_sdr_db']:.0f} dB and band gains within +-{GOALS['band_gain_db']:.0f} dB up to "
             f"{GOALS['band_max_hz'] // 1000} kHz at {'/'.join(str(l) for l in LEVELS_DBFS)} dBFS; output SI-SDR >= input at 20 dB SNR; "
             f"equivariance below {GOALS['equivariance_db']:.0f} dB (DFN3 about -45/-38 dB).", ""]
    for g in groups:
        body += [f"### {g}: per SNR", table(("SNR", "system", *head[1:]), [(f"{snr:+d} dB", s, *(_fmt(_mean(rows, s, m, group=g, snr=snr)) for m in M))
                                                                      for snr in snrs for s in systems]), ""]
        body += [f"### {g}: per noise family (all SNRs)", table(("family", "system", *head[1:], "PESQ gain share"),
                 [(fam, s, *(_fmt(_mean(rows, s, m, group=g, family=fam)) for m in M),
                   "-" if s in ("noisy", "DFN3") else (lambda v: "n/a" if v is None else f"{100 * v:.0f} %")(_gain_share(rows, s, group=g, family=fam)))
                  for fam in fam_list for s in systems]), ""]
    bands = [f"{lo // 1000}-{hi // 1000}k" for lo, hi in BANDS]
    body += ["### Transparency on clean held-out voices", "Voices: " + ", ".join(f"{v} ({len(x) / SR:.1f} s, bandwidth {bw / 1000:g} kHz)"
             for v, x, bw in voices) + ". Band gain = output/input band energy in dB (blank: outside the voice's bandwidth); "
             "SI-SDR and gains per voice and level.", "",
             table(("system", "voice", "level", "SI-SDR", *bands),
                   [(s, r["voice"], f"{r['level_dbfs']} dBFS", f"{r['si_sdr']:.1f}", *(f"{r['gains'][b]:+.2f}" if b in r["gains"] else "" for b in bands))
                    for s in trans for r in trans[s]]), ""]
    body += ["### 20 dB SNR rule and level equivariance",
             f"Equivariance on a {len(eq_x) / SR:.1f} s {eq_voice} voice at -25 dBFS (bandwidth {eq_bw / 1000:g} kHz), after the first {EQ_SKIP_S:g} s.", "",
             table(("system", "20 dB: worst out - in SI-SDR", "worst per group", "violations", "worst item", "equivariance x3", "equivariance x0.1"),
                   [(s, *(("n/a",) * 4 if s not in snr20 else (f"{snr20[s]['worst_db']:+.2f} dB",
                          ", ".join(f"{g} {v:+.2f} dB" for g, v in snr20[s]["worst_by_group"].items()),
                          f"{snr20[s]['violations']}/{snr20[s]['n']}", snr20[s]["worst_id"])),
                     f"{equi[s]['x3']:.1f} dB", f"{equi[s]['x0.1']:.1f} dB") for s in systems[1:]]), ""]
    total = time.time() - t_start
    body += [f"Run time: {total:.0f} s (mixtures {t_mix:.0f} s, transparency {t_tr:.0f} s; enhancement " +
             ", ".join(f"{s} {v:.0f} s" for s, v in timing.items() if s != "noisy") + ")."]
    print("\n" + "\n".join(body[:6]), flush=True)
    data = dict(specs=specs, seed=a.seed, quick=a.quick, snrs=list(snrs), summary=summary, snr20=snr20, equivariance=equi,
                transparency=trans, timing=dict(total_s=total, mixtures_s=t_mix, transparency_s=t_tr, enhance_s=timing), rows=rows,
                items=[{k: v for k, v in it.items() if k not in ("clean", "noisy")} for it in items])
    write_results(a.name, "\n".join(body), 1, data)


if __name__ == "__main__": main()
