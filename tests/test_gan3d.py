"""End-to-end tests of the 3DGAN through `tilegan-train calo`: two real worker processes under
MultiWorkerMirroredStrategy on an HDF5 file written by `tilegan-calo-mc`, the exported generator
reloaded in safe mode and sampled, and one-line errors for bad training data. Narrow models
(`gan3d.width=0.125`) and one step keep them short: the grid is always 51x51x25."""
import json, os, subprocess
from pathlib import Path
import h5py
import numpy as np
import pytest
from conftest import BIN, run, last_json, one_line_error

TINY = ['--set', 'gan3d.width=0.125', '--set', 'gan3d.latent_dim=16', '--set', 'gan3d.batch_size=1']


@pytest.fixture(scope='module')
def mc(tmp_path_factory):
    "Eight parametric-MC showers written by the console script."
    d = tmp_path_factory.mktemp('gan3d')
    res = last_json(run('tilegan-calo-mc', '--events', 8, '--out', d/'mc.h5', '--seed', 1, '--json'))
    assert res['events'] == 8
    return d/'mc.h5'


@pytest.mark.slow
def test_multiworker_train_export_generate(mc, tmp_path):
    "Two workers train one step together, agree on the weights, and the chief's generator reloads safely."
    from tilegan_core.distribute import free_ports, local_tf_config
    ports, out = free_ports(2), tmp_path/'run'
    procs = [subprocess.Popen([str(BIN/'tilegan-train'), 'calo', '--data', str(mc), '--out', str(out), '--strategy', 'multiworker',
                               '--steps', '1', *TINY, '--json'], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2', 'TF_CONFIG': local_tf_config(ports, i)})
             for i in range(2)]
    res = []
    for p in procs:
        o, e = p.communicate(timeout=600)
        assert p.returncode == 0, e[-3000:]
        res.append(json.loads(o.strip().splitlines()[-1]))
    assert [r['replicas'] for r in res] == [2, 2] and [r['global_batch'] for r in res] == [2, 2]
    assert res[0]['weights_sha256'] == res[1]['weights_sha256']
    assert [r['chief'] for r in res] == [True, False]
    assert all(np.isfinite(res[0][k]) for k in ('d_loss', 'g_loss', 'g_angle', 'g_ecal'))
    assert (out/'models'/'generator.keras').exists() and (out/'summary.json').exists()
    from tilegan_core.calo.gan3d import load_generator, generate
    g = load_generator(out/'models'/'generator.keras')
    sh = generate(g, [110., 150., 190.], np.radians([62., 90., 118.]), seed=0)
    assert sh.shape == (3, 51, 51, 25) and sh.dtype == np.float32 and np.isfinite(sh).all() and sh.min() >= 0


def _bad(path, **dsets):
    with h5py.File(path, 'w') as f:
        for k, v in dsets.items(): f[k] = v
    return path


def test_bad_training_data(mc, tmp_path):
    "A missing angle key, a wrong shape and a truncated file each stop tilegan-train with one line (NaN cells: see test_calo)."
    n = 3
    ok = dict(ECAL=np.ones((n, 51, 51, 25), np.float32), energy=np.full(n, 150., np.float32), mtheta=np.full(n, 1.5, np.float32))
    trunc = tmp_path/'trunc.h5'; trunc.write_bytes(mc.read_bytes()[:4000])
    cases = {_bad(tmp_path/'nokey.h5', ECAL=ok['ECAL'], energy=ok['energy']): "missing key 'mtheta'",
             _bad(tmp_path/'shape.h5', **{**ok, 'ECAL': np.ones((n, 25, 25, 25), np.float32)}): 'expected (N, 51, 51, 25)',
             trunc: 'truncated', tmp_path/'absent.h5': 'no such file'}
    # one process checks all the files the way build_task does (fast), the CLI is run on two of them
    from tilegan_core.calo.gan3d import count_events
    from tilegan_core.core import InputError
    for path, msg in cases.items():
        with pytest.raises(InputError, match=None) as e: count_events(path)
        assert msg in str(e.value) and str(path) in str(e.value) and len(str(e.value).splitlines()) == 1
    for path in (tmp_path/'nokey.h5', trunc):
        line = one_line_error(run('tilegan-train', 'calo', '--data', path, '--out', tmp_path/'r', *TINY), 'tilegan-train')
        assert cases[path] in line and str(path) in line
    assert 'is required' in one_line_error(run('tilegan-train', 'calo', '--out', tmp_path/'r2'), 'tilegan-train')
