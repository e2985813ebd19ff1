"""README.md is index.ipynb rendered as Markdown, and the source of the commands `.ci/run` executes.

python tools/readme.py sync [--check]     write README.md from nbs/index.ipynb (or fail if it is stale)
python tools/readme.py cmd install|run|test   print the one command of that README section
"""
import json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NB, README = ROOT/'nbs'/'index.ipynb', ROOT/'README.md'

def render(nb_path=NB) -> str:
    "Markdown cells as they are; code cells (without `#|` directives, skipping `#| hide`) as fenced python."
    parts = []
    for c in json.loads(nb_path.read_text())['cells']:
        src = ''.join(c['source'])
        if c['cell_type'] == 'markdown': parts.append(src.strip())
        elif c['cell_type'] == 'code':
            lines = src.splitlines()
            dirs = [l for l in lines if l.startswith('#|')]
            if any(re.match(r'#\|\s*hide\b', d) for d in dirs) or not src.strip(): continue
            parts.append('```python\n' + '\n'.join(l for l in lines if not l.startswith('#|')).strip() + '\n```')
    return '<!-- generated from nbs/index.ipynb by `python tools/readme.py sync`: edit the notebook, not this file -->\n\n' \
        + '\n\n'.join(parts) + '\n'

def command(section: str, text: str = None) -> str:
    "The single ```sh block under the `## <section>` heading."
    text = text or README.read_text()
    m = re.search(rf'^## {re.escape(section)}\s*$(.*?)(?=^## |\Z)', text, re.M | re.S | re.I)
    if not m: sys.exit(f'README.md has no "## {section.title()}" section')
    blocks = re.findall(r'```sh\n(.*?)```', m.group(1), re.S)
    if len(blocks) != 1: sys.exit(f'README.md section "{section}" must hold exactly one ```sh block, found {len(blocks)}')
    return blocks[0].strip()

if __name__ == '__main__':
    args = sys.argv[1:]
    if args[:1] == ['sync']:
        new = render()
        if '--check' in args:
            if not README.exists() or README.read_text() != new:
                sys.exit('README.md is out of date with nbs/index.ipynb: run `python tools/readme.py sync`')
        else: README.write_text(new)
    elif args[:1] == ['cmd'] and len(args) == 2: print(command(args[1]))
    else: sys.exit(__doc__)
