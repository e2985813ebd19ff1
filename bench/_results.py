"""Where the benchmarks' tables go: `bench/results/<name>.md`, a Markdown table with a line saying how, where and
when it was measured. Notebooks display these files (they never type a benchmark table by hand), so a figure on the
docs pages is always the last run of the script that produced it."""
import datetime, os, platform, sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

def _cpu() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"): return line.split(":", 1)[1].strip()
    except OSError: pass
    return platform.processor() or platform.machine()

def table(header, rows) -> str:
    "A Markdown table from a header tuple and row tuples (cells already formatted as strings)."
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)

def write_results(name: str, body: str, threads: int | None = None, data=None) -> Path:
    """Write `body` (Markdown) to results/<name>.md with its provenance (and `data`, if given, to results/<name>.json,
    for figures); returns the path. Each file is replaced atomically."""
    import torch
    cmd = " ".join(["python", f"bench/{Path(sys.argv[0]).name}", *sys.argv[1:]])
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    load = f", load {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    prov = (f"*`{cmd}` on {when}: {_cpu()}, {os.cpu_count()} cores, "
            f"{threads if threads is not None else torch.get_num_threads()} thread(s){load}, torch {torch.__version__}.*")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.md"; tmp = path.with_suffix(".md.tmp")
    tmp.write_text(body.rstrip() + "\n\n" + prov + "\n"); os.replace(tmp, path)
    if data is not None:
        import json
        jp = RESULTS / f"{name}.json"; jt = jp.with_suffix(".json.tmp")
        jt.write_text(json.dumps({"provenance": prov.strip("*"), "data": data}, indent=1)); os.replace(jt, jp)
    print(f"\nwrote {path.relative_to(RESULTS.parent.parent)}")
    return path
