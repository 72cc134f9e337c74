"""Write README.md from nbs/index.ipynb (markdown cells verbatim, shown code cells fenced).

nbdev's own `nbdev-readme` renders through Quarto, a separate binary; this keeps the README in
sync with the index notebook with nothing but the standard library.
Usage: python scripts/readme.py [--check]
"""
import json, sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
cells = json.loads((root/'nbs'/'index.ipynb').read_text())['cells']
parts = []
for c in cells:
    src = ''.join(c['source']).strip()
    if not src or src.startswith('#| hide'): continue
    parts.append(src if c['cell_type'] == 'markdown' else f'```python\n{src}\n```')
text = '<!-- generated from nbs/index.ipynb by scripts/readme.py; edit the notebook, not this file -->\n\n' \
       + '\n\n'.join(parts) + '\n'
readme = root/'README.md'
if '--check' in sys.argv:
    if not readme.exists() or readme.read_text() != text:
        sys.exit('README.md is out of date with nbs/index.ipynb: run make export and commit README.md')
else:
    readme.write_text(text)
