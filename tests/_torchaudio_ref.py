"""torchaudio's HDemucs as the reference, without importing torchaudio: its wheel does not import beside the CPU torch
build, but `torchaudio/models/_hdemucs.py` imports only torch. `torchaudio_hdemucs()` extracts that one file from the
wheel into a cache folder and loads it as a standalone module; it returns None (with `why_absent()` saying why) when no
wheel can be found or fetched."""
import importlib.util, os, subprocess, sys, zipfile
from pathlib import Path

VERSION = "2.11.0"
MEMBER = "torchaudio/models/_hdemucs.py"
CACHE = Path(os.environ.get("DFNB_CACHE", Path.home() / ".cache" / "dfnb")) / "torchaudio"
_state = {"mod": None, "why": None, "done": False}

def _wheels(folder: Path) -> list:
    return sorted(Path(folder).glob(f"torchaudio-{VERSION}-*.whl")) if Path(folder).is_dir() else []

def _find_wheel():
    env = os.environ.get("DFNB_TORCHAUDIO_WHEEL")
    if env:
        p = Path(env)
        hits = [p] if p.is_file() else _wheels(p)
        if hits: return hits[0]
    if _wheels(CACHE): return _wheels(CACHE)[0]
    if os.environ.get("DFNB_NO_DOWNLOAD"): return None
    CACHE.mkdir(parents=True, exist_ok=True)
    r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", str(CACHE),
                        f"torchaudio=={VERSION}"], capture_output=True, text=True, timeout=600)
    return _wheels(CACHE)[0] if r.returncode == 0 and _wheels(CACHE) else None

def torchaudio_hdemucs():
    "The module `torchaudio.models._hdemucs` of torchaudio 2.11.0 (HDemucs, hdemucs_high, ...), or None if unavailable."
    if _state["done"]: return _state["mod"]
    _state["done"] = True
    try: whl = _find_wheel()
    except Exception as e: whl, _state["why"] = None, f"pip download failed ({type(e).__name__}: {e})"
    if whl is None:
        _state["why"] = _state["why"] or (f"torchaudio=={VERSION} wheel not found (set DFNB_TORCHAUDIO_WHEEL to the wheel "
                                          f"or its folder, or allow `pip download --no-deps torchaudio=={VERSION}`)")
        return None
    dst = CACHE / f"_hdemucs_{VERSION}.py"
    if not dst.is_file():
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")           # complete or absent: never a partial module
        with zipfile.ZipFile(whl) as z: tmp.write_bytes(z.read(MEMBER))
        os.replace(tmp, dst)
    spec = importlib.util.spec_from_file_location("torchaudio_hdemucs_ref", dst)
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    _state["mod"] = mod
    return mod

def why_absent() -> str: return _state["why"] or ""
