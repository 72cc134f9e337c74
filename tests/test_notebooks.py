"""Every library notebook is a test: nbdev's `test_nb` runs its cells top to bottom, as `nbdev-test` does, in a
process of its own (TensorFlow's logical-device setup can happen only once per process, before TensorFlow starts).
That process is forked from a server that has already imported TensorFlow and the library, once per pytest worker,
so a notebook does not pay TensorFlow's start-up (about 4 s of CPU) again; forking before TensorFlow has run an op
leaves the device setup to the notebook. Cells marked `#| slow` run too, unless the run deselects slow tests
(`-m "not slow"`, as `make test-fast` does). The notebooks whose tests train models or run whole pipelines (20 s or
more each on 2 cores) are slow tests themselves: the inner loop leaves them out."""
import multiprocessing, os, sys
from pathlib import Path
import pytest
from conftest import ROOT

NOTEBOOKS = sorted((ROOT/'nbs').glob('*.ipynb'))
TRAINING = {'06_bench', '07_reproduce', '14_sat_cprogan', '16_sat_flood', '21_loops', '32_calo_gan3d',
            '33_calo_physics', '34_calo_generate'}
PRELOAD = ['tilegan_core', 'tensorflow', 'keras', 'matplotlib.pyplot', 'rasterio', 'h5py', 'execnb.shell', 'nbdev.test']
FORKS = multiprocessing.get_context('forkserver')
FORKS.set_forkserver_preload(PRELOAD)      # the server starts at the first notebook and imports these once


def run_notebook(nb, force_flags, log):
    "In a forked process: test notebook `nb` with nbdev, as `nbdev-test` would, writing its output to `log`."
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1); os.dup2(fd, 2)
    from fastcore.xtras import working_directory
    from nbdev.config import get_config
    from nbdev.test import test_nb
    cfg = get_config(ROOT)
    skip = [f for f in cfg.tst_flags.split() if f not in force_flags]
    with working_directory(cfg.nbs_path):
        ok, _ = test_nb(Path(nb), skip_flags=skip, force_flags=force_flags, basepath=cfg.config_path,
                        cell_timeout=cfg.cell_timeout)
    sys.stdout.flush(); sys.stderr.flush()
    os._exit(0 if ok else 1)


def test_every_notebook_is_collected():
    assert len(NOTEBOOKS) >= 20 and (ROOT/'nbs'/'index.ipynb') in NOTEBOOKS
    assert TRAINING <= {p.stem for p in NOTEBOOKS}


@pytest.mark.parametrize('nb', [pytest.param(p, marks=pytest.mark.slow) if p.stem in TRAINING else p for p in NOTEBOOKS],
                         ids=[p.stem for p in NOTEBOOKS])
def test_notebook(nb, request, tmp_path):
    slow_cells = 'not slow' not in (request.config.getoption('markexpr') or '')
    log = tmp_path/'notebook.log'
    p = FORKS.Process(target=run_notebook, args=(str(nb), ['slow'] if slow_cells else [], str(log)))
    p.start(); p.join(timeout=1200)
    if p.is_alive(): p.kill(); p.join()
    assert p.exitcode == 0, f'{nb.name} failed (exit {p.exitcode}):\n{log.read_text(errors="replace")[-6000:]}'
