"""Every library notebook is a test: `nbdev-test` runs its cells top to bottom in a process of its own (TensorFlow's
logical-device setup can happen only once per process, before TensorFlow starts). Cells marked `#| slow` run too,
unless the run deselects slow tests (`-m "not slow"`, as `make test-fast` does). The notebooks whose tests train
models or run whole pipelines (20 s or more each on 2 cores) are slow tests themselves: the inner loop leaves them out."""
import os, re, subprocess
import pytest
from conftest import ROOT, BIN

NOTEBOOKS = sorted((ROOT/'nbs').glob('*.ipynb'))
TRAINING = {'06_bench', '07_reproduce', '14_sat_cprogan', '16_sat_flood', '21_loops', '31_calo_mc', '32_calo_gan3d',
            '33_calo_physics', '34_calo_generate'}
NOISE = re.compile(r'cuda|absl::|IPKernelApp|oneDNN|cpu_feature_guard')


def test_every_notebook_is_collected():
    assert len(NOTEBOOKS) >= 20 and (ROOT/'nbs'/'index.ipynb') in NOTEBOOKS
    assert TRAINING <= {p.stem for p in NOTEBOOKS}


@pytest.mark.parametrize('nb', [pytest.param(p, marks=pytest.mark.slow) if p.stem in TRAINING else p for p in NOTEBOOKS],
                         ids=[p.stem for p in NOTEBOOKS])
def test_notebook(nb, request):
    slow_cells = 'not slow' not in (request.config.getoption('markexpr') or '')
    env = {**os.environ, 'TF_ENABLE_ONEDNN_OPTS': os.environ.get('TF_ENABLE_ONEDNN_OPTS', '1')}  # as `import tilegan_core` sets it
    r = subprocess.run([str(BIN/'nbdev-test'), *(['--flags', 'slow'] if slow_cells else []), str(nb)],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=1200)
    log = '\n'.join(l for l in (r.stdout + r.stderr).splitlines() if not NOISE.search(l))
    assert r.returncode == 0, f'{nb.name} failed:\n{log[-6000:]}'
