"""The docs site's sidebar (nbs/sidebar.yml) is hand-kept, because pyproject sets custom_sidebar = true so that the
chapters can be grouped into sections (nbdev-sidebar would list them flat). These tests keep it honest: every
notebook in nbs/ appears exactly once, no entry names a notebook that does not exist, index comes first and the
chapters follow their numbering."""
import json, re
from pathlib import Path
import pytest, yaml

NBS = Path(__file__).resolve().parents[1] / "nbs"

def _entries(contents):
    "Leaf entries of a Quarto sidebar `contents` list, in order: strings, or `href`/`file` of dicts; sections recursed."
    for item in contents or []:
        if isinstance(item, str): yield item
        elif isinstance(item, dict):
            if "contents" in item: yield from _entries(item["contents"])
            for k in ("href", "file"):
                if k in item: yield item[k]

def _sidebar():
    sb = yaml.safe_load((NBS / "sidebar.yml").read_text())["website"]["sidebar"]
    return [e for e in _entries(sb["contents"]) if e.endswith(".ipynb")]

def _notebooks():
    return sorted(p.name for p in NBS.glob("*.ipynb") if not p.name.startswith(("_", ".")))

def test_sidebar_lists_every_notebook():
    missing = sorted(set(_notebooks()) - set(_sidebar()))
    assert not missing, f"notebooks missing from nbs/sidebar.yml: {missing}"

def test_sidebar_names_only_existing_notebooks():
    ghosts = sorted(set(_sidebar()) - set(_notebooks()))
    assert not ghosts, f"nbs/sidebar.yml names notebooks that do not exist: {ghosts}"

def test_sidebar_has_no_duplicates():
    sb = _sidebar()
    assert len(sb) == len(set(sb)), sorted({e for e in sb if sb.count(e) > 1})

def test_sidebar_index_first_then_numbering_order():
    sb = _sidebar()
    assert sb[0] == "index.ipynb", sb[0]
    nums = [int(re.match(r"(\d+)_", e).group(1)) for e in sb[1:]]
    assert nums == sorted(nums), f"sidebar chapters out of numbering order: {sb[1:]}"

def test_custom_sidebar_stays_on():
    "With custom_sidebar = false, nbdev would regenerate sidebar.yml (flat) and drop the sections."
    assert re.search(r"^custom_sidebar\s*=\s*true", (NBS.parent / "pyproject.toml").read_text(), re.M)

def test_quarto_reads_the_sidebar():
    "Quarto sees sidebar.yml only through _quarto.yml's metadata-files."
    assert "sidebar.yml" in yaml.safe_load((NBS / "_quarto.yml").read_text()).get("metadata-files", [])


def _title_cell(p):
    "The notebook's title cell: its first markdown cell that starts with `# ` (where nbdev reads the page's frontmatter)."
    return next("".join(c["source"]) for c in json.loads(p.read_text())["cells"]
                if c["cell_type"] == "markdown" and "".join(c["source"]).startswith("# "))

def _subtitle_problem(md):
    """What is wrong with a title cell's `> description`, or None. nbdev (fastcore's `md_frontmatter`) keeps only the
    first `>` line as the page subtitle, and drops the whole title cell from the page, so a description must be one
    line and nothing may follow it in that cell: longer text goes in the next cell (tagged `#| export`, it is also the
    module docstring)."""
    lines = md.strip().splitlines()
    q = [i for i, l in enumerate(lines) if l.startswith(">")]
    if not q: return "no `> description` line"
    if len(q) > 1: return f"a `>` description of {len(q)} lines (the site shows only the first)"
    if any(l.strip() for l in lines[q[0] + 1:]): return "text after the `>` description (nbdev drops it from the page)"

@pytest.mark.parametrize("nb", _notebooks())
def test_subtitle_is_one_line(nb):
    problem = _subtitle_problem(_title_cell(NBS / nb))
    assert problem is None, f"{nb}: {problem}"

def test_subtitle_check_catches_multiline():
    assert _subtitle_problem("# T\n\n> one line.") is None
    assert "2 lines" in _subtitle_problem("# T\n\n> a long description that\n> goes on")
    assert "after" in _subtitle_problem("# T\n\n> one line.\n\nA paragraph nbdev would drop.")
    assert "no" in _subtitle_problem("# T")

def test_module_docstrings_say_more_than_the_subtitle():
    "nbdev lists a module in the package docstring only when its docstring has more than 3 lines (summary, Docs: link)."
    from nbdev.config import _mod_docstr, _substantive
    thin = sorted(p.name for p in (NBS.parent / "dfnb").glob("[!_]*.py") if not _substantive(_mod_docstr(p)))
    assert not thin, f"module docstrings with only a summary line (tag a markdown cell `#| export`): {thin}"


def test_no_doubled_backslashes_in_markdown():
    "'\\\\cmd' in a markdown cell renders as a line break plus text in Quarto/MathJax (the math breaks on the site)."
    bad = sorted({p.name for p in NBS.glob("*.ipynb") for c in json.loads(p.read_text())["cells"]
                  if c["cell_type"] == "markdown" and re.search(r"\\\\[A-Za-z{}]", "".join(c["source"]))})
    assert not bad, f"single backslashes in LaTeX, please: {bad}"
