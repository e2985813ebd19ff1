"""torchaudio's HDemucs as the reference, without importing torchaudio (its wheel does not import beside the CPU torch
build, but `torchaudio/models/_hdemucs.py` imports only torch). The loader now lives in the package, beside the port it
checks (`dfnb.hdemucs.torchaudio_hdemucs`, documented in nbs/50_hdemucs_port.ipynb); this module keeps the names that
tests and `bench/bench_hdemucs.py` import."""
from dfnb.hdemucs import TORCHAUDIO_VERSION as VERSION, torchaudio_hdemucs, torchaudio_absent_reason as why_absent

__all__ = ["VERSION", "torchaudio_hdemucs", "why_absent"]
