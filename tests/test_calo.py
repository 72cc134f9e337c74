"Calorimeter data, parametric MC and physics validation: console script end to end, bad files, TFRecord pipeline, metric sanity."
import json, math, subprocess, sys
from pathlib import Path
import h5py, numpy as np, pytest
from tilegan_core.core import InputError
from tilegan_core.calo.data import read_calo_h5, write_calo_h5, to_tfrecords, calo_dataset, postprocess, ECAL_SCALE, FILE_UNIT
from conftest import run, last_json, one_line_error

pytestmark = pytest.mark.xdist_group('calo')  # one worker builds the module's data fixtures once

BIN = Path(sys.executable).parent


def mc_cli(*args):
    "Run tilegan-calo-mc with `args`; return the completed process."
    return subprocess.run([str(BIN/'tilegan-calo-mc'), *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope='module')
def mc_file(tmp_path_factory):
    "600 showers of the paper's set (100-200 GeV, 60-120 degrees) written by the console script."
    out = tmp_path_factory.mktemp('mc')/'mc.h5'
    r = mc_cli('--events', 600, '--out', out, '--seed', 0, '--json')
    assert r.returncode == 0, r.stderr
    return out, json.loads(r.stdout.strip().splitlines()[-1])


def test_cli_writes_the_3dgan_layout(mc_file):
    out, res = mc_file
    assert res['events'] == 600 and res['seconds'] > 0
    with h5py.File(out) as f:
        assert sorted(f) == ['ECAL', 'energy', 'eta', 'mtheta', 'sum', 'theta']     # the keys of the real files
        assert f['ECAL'].shape == (600, 51, 51, 25) and f['ECAL'].dtype == np.float32 and f['mtheta'].dtype == np.float64
        assert f.attrs['ecal_units'] == FILE_UNIT and 'not Geant4' in f.attrs['generator']
        assert np.allclose(f['sum'][()], f['ECAL'][()].sum((1, 2, 3)), rtol=1e-4)
    d = read_calo_h5(out)
    assert np.abs(d['angle'] - d['theta']).mean() < 0.08 and np.corrcoef(d['angle'], d['theta'])[0, 1] > 0.95  # mtheta follows theta
    assert 100 <= d['energy'].min() and d['energy'].max() <= 200
    assert math.radians(60) <= d['theta'].min() and d['theta'].max() <= math.radians(120)
    sf = d['ecal'].sum((1, 2, 3)) / ECAL_SCALE / d['energy']
    assert 0.015 < sf.mean() < 0.02                      # sampling fraction of the Si-W stack, minus leakage


def test_cli_is_reproducible_and_takes_ranges(tmp_path):
    a, b = tmp_path/'a.h5', tmp_path/'b.h5'
    for p in (a, b): assert mc_cli('--events', 6, '--out', p, '--energy-range', 2, 500, '--angle-range', 80, 100, '--seed', 7).returncode == 0
    da, db = read_calo_h5(a), read_calo_h5(b)
    assert np.array_equal(da['ecal'], db['ecal']) and np.array_equal(da['energy'], db['energy'])
    assert 2 <= da['energy'].min() and da['energy'].max() <= 500
    assert math.radians(80) <= da['theta'].min() and da['theta'].max() <= math.radians(100)


@pytest.mark.parametrize('args,msg', [
    (['--energy-range', 200, 100], '--energy-range 200 100'),
    (['--angle-range', 10, 170], '--angle-range 10 170'),
    (['--events', 0], '--events 0'),
])
def test_cli_bad_arguments_fail_in_one_line(tmp_path, args, msg):
    r = mc_cli('--out', tmp_path/'x.h5', *args)
    assert r.returncode == 2 and msg in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path/'x.h5').exists() and list(tmp_path.iterdir()) == []


def _write(path, **arrays):
    with h5py.File(path, 'w') as f:
        for k, v in arrays.items(): f[k] = v
    return path


@pytest.fixture(scope='module')
def small(mc_file):
    return read_calo_h5(mc_file[0], 0, 4)


@pytest.mark.parametrize('case,msg', [
    ('missing_key', "missing key 'mtheta'"),
    ('no_energy', "missing key 'energy'"),
    ('wrong_shape', 'found ECAL (4, 51, 51, 20), energy (4,), mtheta (4,), the layout of another calorimeter version'),
    ('v25_target', 'found ECAL (4, 25, 25, 25), target (4, 3), the layout of another calorimeter version'),
    ('fixed_target', "found ECAL (4, 51, 51, 25), target (4, 3): the older fixed-angle layout"),
    ('energy_2d', 'energy has shape (4, 2); expected (4,) or (4, 1)'),
    ('int_dtype', 'expected float32'),
    ('length', 'to match ECAL'),
    ('nan', 'NaN or infinite cells in 1 event'),
    ('degrees', 'degrees given?'),
    ('truncated', 'truncated'),
    ('not_hdf5', 'not a readable HDF5 file'),
    ('missing_file', 'file not found'),
])
def test_bad_files_give_one_clear_line(tmp_path, small, mc_file, case, msg):
    p, e, en, th = tmp_path/f'{case}.h5', small['ecal'], small['energy'], small['angle']
    if case == 'missing_key': _write(p, ECAL=e, energy=en, theta=th)
    elif case == 'no_energy': _write(p, ECAL=e, mtheta=th)
    elif case == 'wrong_shape': _write(p, ECAL=e[..., :20], energy=en, mtheta=th)
    elif case == 'v25_target': _write(p, ECAL=e[:, :25, :25, :25], target=np.ones((4, 3)))
    elif case == 'fixed_target': _write(p, ECAL=e, target=np.ones((4, 3)))
    elif case == 'energy_2d': _write(p, ECAL=e, energy=np.stack([en, en], 1), mtheta=th)
    elif case == 'int_dtype': _write(p, ECAL=e.astype(np.int32), energy=en, mtheta=th)
    elif case == 'length': _write(p, ECAL=e, energy=en[:3], mtheta=th)
    elif case == 'nan':
        bad = e.copy(); bad[1, 20, 20, 5] = np.nan; _write(p, ECAL=bad, energy=en, mtheta=th)
    elif case == 'degrees': _write(p, ECAL=e, energy=en, mtheta=np.degrees(th))
    elif case == 'truncated':
        raw = mc_file[0].read_bytes(); p.write_bytes(raw[:len(raw) // 2])
    elif case == 'not_hdf5': p.write_text('ECAL,energy,theta\n1,2,3\n')
    with pytest.raises(InputError) as ei: read_calo_h5(p)
    assert msg in str(ei.value) and str(p) in str(ei.value) and len(str(ei.value).splitlines()) == 1


def test_energy_n1_and_the_reference_generated_layout(tmp_path, small):
    p = _write(tmp_path/'n1.h5', ECAL=small['ecal'], energy=small['energy'][:, None], theta=small['theta'], mtheta=small['angle'])
    d = read_calo_h5(p)
    assert d['energy'].shape == (4,) and np.allclose(d['energy'], small['energy']) and np.allclose(d['angle'], small['angle'])
    g = _write(tmp_path/'Gen_150.hdf5', ECAL=small['ecal'][..., None], Target=small['energy'][:, None], Angle=small['theta'])
    d = read_calo_h5(g)
    assert d['ecal'].shape == (4, 51, 51, 25) and np.allclose(d['theta'], small['theta']) and np.allclose(d['energy'], small['energy'])


def test_tfrecords_and_pipeline(tmp_path):
    h5 = tmp_path/'low.h5'
    assert mc_cli('--events', 24, '--out', h5, '--energy-range', 2, 25, '--seed', 3).returncode == 0
    raw = read_calo_h5(h5)
    sums = raw['ecal'].sum((1, 2, 3))
    keep = sums > 10.0
    assert 0 < keep.sum() < len(keep)                    # the cut bites in this range
    shards = to_tfrecords([h5], tmp_path/'shards', events_per_shard=10)
    assert [s.name for s in shards] == [f'calo-0000{i}.tfrecord.gz' for i in range(3)]
    assert not list((tmp_path/'shards').glob('.*'))       # no temporary leftovers
    got = list(calo_dataset(shards, batch_size=None, power=0.85, min_ecal_sum=10.0).as_numpy_iterator())
    assert len(got) == keep.sum()
    x, ep, ang, esum = map(np.stack, zip(*got))
    assert x.shape == (keep.sum(), 51, 51, 25, 1)
    assert np.allclose(x[..., 0], raw['ecal'][keep] ** 0.85, rtol=1e-4, atol=1e-6)
    assert np.allclose(ep, raw['energy'][keep] / 100) and np.allclose(ang, raw['angle'][keep])
    assert np.allclose(esum, sums[keep], rtol=1e-5)
    assert np.allclose(postprocess(x, 0.85), raw['ecal'][keep], rtol=1e-3, atol=1e-5)
    batches = list(calo_dataset(shards, batch_size=4, min_ecal_sum=10.0, shuffle=8, seed=0))
    assert all(b[0].shape[0] == 4 for b in batches) and len(batches) == keep.sum() // 4


@pytest.mark.slow   # trains two classifiers
def test_physics_metrics_pass_for_mc_and_fail_for_a_distorted_mc(mc_file):
    import matplotlib; matplotlib.use('Agg')
    from tilegan_core.calo.mc import simulate_showers, MCParams
    from tilegan_core.calo.physics import compare
    ref = read_calo_h5(mc_file[0])
    same = dict(ref, ecal=simulate_showers(ref['energy'], ref['theta'], seed=11))
    wide = dict(ref, ecal=simulate_showers(ref['energy'], ref['theta'], seed=12, params=MCParams(radial_scale=1.1)))
    m_same, figs = compare(ref, same)
    m_wide, _ = compare(ref, wide, figures=False)
    json.dumps(m_same); json.dumps(m_wide)                 # ready for results.json
    assert abs(m_same['classifier_auc'] - 0.5) < 0.1
    assert max(m_same['separation_power'].values()) < 0.06
    assert m_wide['classifier_auc'] > m_same['classifier_auc'] + 0.15
    assert m_wide['separation_power']['y_m2'] > 0.1 > m_same['separation_power']['y_m2']
    assert {'sampling_fraction', 'shapes_energy', 'shapes_angle', 'angle', 'features'} <= set(figs)
    assert m_same['bins']['energy']['150'][0] > 0 and m_same['bins']['angle']['90'][0] > 0


# ---- real layouts end to end: the files as Zenodo ships them, the reference code's generated files, the console scripts

TINY = ['--set', 'gan3d.width=0.125', '--set', 'gan3d.latent_dim=16', '--set', 'gan3d.batch_size=2', '--set', 'gan3d.eval_showers=0']  # scoring is tested in 32_calo_gan3d


def real_layout(path, n=24, seed=0, energy_col=True):
    "A CLIC variable-angle file written with h5py the way the public files are: energy (N, 1), float64 angles, sum."
    from tilegan_core.calo.mc import simulate
    d = simulate(n, seed=seed)
    with h5py.File(path, 'w') as f:
        f['ECAL'] = d['ecal']
        f['energy'] = d['energy'][:, None] if energy_col else d['energy']
        for k in ('theta', 'mtheta', 'eta'): f[k] = d[k].astype(np.float64)
        f['sum'] = d['ecal'].sum((1, 2, 3))
    return path


@pytest.fixture(scope='module')
def real(tmp_path_factory):
    return real_layout(tmp_path_factory.mktemp('real')/'Ele_VarAngle_1.h5')


@pytest.mark.slow
def test_train_two_steps_on_a_real_layout_file_conditioned_on_mtheta(real, tmp_path):
    res = last_json(run('tilegan-train', 'calo', '--data', real, '--out', tmp_path/'run', '--steps', 2, *TINY, '--json'))
    assert res['steps'] == 2 and res['status'] == 'done' and np.isfinite(res['g_angle'])
    prof = json.loads((tmp_path/'run'/'profile.json').read_text())
    assert prof['calo']['angle'] == 'mtheta'                       # the choice is recorded in the run


@pytest.mark.slow
def test_convert_then_train_from_the_shards(real, tmp_path):
    out = tmp_path/'shards'
    res = last_json(run('tilegan-calo-convert', real, real_layout(tmp_path/'b.h5', 8, seed=1, energy_col=False),
                        '--out', out, '--shard-events', 10, '--json'))
    assert res['shards'] == 4 and res['events'] == 32 and res['angle'] == 'mtheta'
    m = json.loads((out/'manifest.json').read_text())
    assert [s['events'] for s in m['shards']] == [10, 10, 10, 2] and m['ecal_units'] == FILE_UNIT
    assert [s['events'] for s in m['sources']] == [24, 8] and not list(out.glob('.*'))
    ref = read_calo_h5(real)
    got = list(calo_dataset(sorted(out.glob('*.tfrecord.gz')), min_ecal_sum=0.0).as_numpy_iterator())
    assert np.allclose([g[2] for g in got[:24]], ref['angle'])      # the shards carry mtheta
    res = last_json(run('tilegan-train', 'calo', '--data', out, '--out', tmp_path/'run', '--steps', 2, *TINY, '--json'))
    assert res['steps'] == 2 and res['status'] == 'done'
    # the engine's schedule comes from the manifest's 32 events, not from the profile's calo.events
    from tilegan_core.calo.data import count_events
    assert count_events(out) == 32
    line = one_line_error(run('tilegan-train', 'calo', '--data', out, '--out', tmp_path/'r2', '--set', 'calo.angle=theta', *TINY),
                          'tilegan-train')
    assert "carry the angle 'mtheta'" in line and '--set calo.angle=mtheta' in line


def test_convert_refuses_bad_input_in_one_line(real, tmp_path):
    v25 = _write(tmp_path/'v25.h5', ECAL=np.zeros((3, 25, 25, 25), np.float32), target=np.ones((3, 3)))
    line = one_line_error(run('tilegan-calo-convert', real, v25, '--out', tmp_path/'s'), 'tilegan-calo-convert')
    assert str(v25) in line and 'ECAL (3, 25, 25, 25), target (3, 3)' in line and 'another calorimeter version' in line
    assert not (tmp_path/'s').exists() or not list((tmp_path/'s').iterdir())   # checked before anything is written
    noang = _write(tmp_path/'noang.h5', ECAL=np.zeros((3, 51, 51, 25), np.float32), energy=np.full(3, 150.), theta=np.full(3, 1.5))
    line = one_line_error(run('tilegan-calo-convert', noang, '--out', tmp_path/'s'), 'tilegan-calo-convert')
    assert "missing key 'mtheta'" in line and str(noang) in line
    assert last_json(run('tilegan-calo-convert', noang, '--angle', 'theta', '--out', tmp_path/'t', '--json'))['events'] == 3
    line = one_line_error(run('tilegan-calo-convert', noang, '--angle', 'theta', '--out', tmp_path/'t'), 'tilegan-calo-convert')
    assert 'already holds shards' in line


@pytest.mark.parametrize('case,msg', [('v25', 'another calorimeter version'), ('noangle', "missing key 'mtheta'"),
                                      ('fixed', 'older fixed-angle layout')])
def test_train_refuses_other_layouts_in_one_line(tmp_path, case, msg):
    e = np.zeros((3, 51, 51, 25), np.float32)
    p = {'v25': lambda: _write(tmp_path/'a.h5', ECAL=e[:, :25, :25], energy=np.full(3, 150.), theta=np.full(3, 1.5)),
         'noangle': lambda: _write(tmp_path/'a.h5', ECAL=e, energy=np.full((3, 1), 150.), theta=np.full(3, 1.5)),
         'fixed': lambda: _write(tmp_path/'a.h5', ECAL=e, target=np.ones((3, 3)))}[case]()
    line = one_line_error(run('tilegan-train', 'calo', '--data', p, '--out', tmp_path/'run', *TINY), 'tilegan-train')
    assert msg in line and str(p) in line


@pytest.mark.slow   # runs the whole validation, classifier included
def test_validate_reads_the_reference_generated_layout(real, tmp_path):
    from tilegan_core.calo.mc import simulate
    g = simulate(24, seed=5)
    gen = _write(tmp_path/'Gen_150.hdf5', ECAL=g['ecal'][..., None], Target=g['energy'][:, None], Angle=g['theta'])
    res = last_json(run('tilegan-validate', 'calo', '--reference', real, '--candidate', gen, '--json'))
    assert res['n_reference'] == res['n_candidate'] == 24
    assert res['layouts']['candidate'] == dict(layout='reference', angle='Angle', events=24)
    assert res['layouts']['reference']['layout'] == 'clic'
    # Target read as GeV and Angle as radians: the Ep and angle bins count the events we wrote
    from tilegan_core.calo.physics import in_bin, ENERGY_TOL, ANGLE_TOL
    assert res['bins']['energy']['150'][1] == int(in_bin(g['energy'], 150., ENERGY_TOL).sum())
    assert res['bins']['angle']['90'][1] == int(in_bin(np.degrees(g['theta']), 90., ANGLE_TOL).sum()) > 0
    v25 = _write(tmp_path/'v25.h5', ECAL=np.zeros((3, 25, 25, 25), np.float32), Target=np.ones(3), Angle=np.ones(3))
    line = one_line_error(run('tilegan-validate', 'calo', '--reference', real, '--candidate', v25), 'tilegan-validate')
    assert 'another calorimeter version' in line and str(v25) in line
