"Calorimeter data, parametric MC and physics validation: console script end to end, bad files, TFRecord pipeline, metric sanity."
import json, math, subprocess, sys
from pathlib import Path
import h5py, numpy as np, pytest
from tilegan_core.core import InputError
from tilegan_core.calo.data import read_calo_h5, write_calo_h5, to_tfrecords, calo_dataset, postprocess, ECAL_SCALE

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
        assert sorted(f) == ['ECAL', 'energy', 'theta']
        assert f['ECAL'].shape == (600, 51, 51, 25) and f['ECAL'].dtype == np.float32
        assert f.attrs['theta_units'] == 'rad' and 'not Geant4' in f.attrs['generator']
    d = read_calo_h5(out)
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
    ('missing_key', "missing key 'theta'"),
    ('no_energy', "missing key 'energy'"),
    ('wrong_shape', 'expected (N, 51, 51, 25)'),
    ('int_dtype', 'expected float32'),
    ('length', 'to match ECAL'),
    ('nan', 'NaN or infinite cells in 1 event'),
    ('degrees', 'degrees given?'),
    ('truncated', 'truncated'),
    ('not_hdf5', 'not a readable HDF5 file'),
    ('missing_file', 'file not found'),
])
def test_bad_files_give_one_clear_line(tmp_path, small, mc_file, case, msg):
    p, e, en, th = tmp_path/f'{case}.h5', small['ecal'], small['energy'], small['theta']
    if case == 'missing_key': _write(p, ECAL=e, energy=en)
    elif case == 'no_energy': _write(p, ECAL=e, theta=th)
    elif case == 'wrong_shape': _write(p, ECAL=e[:, :25, :25], energy=en, theta=th)
    elif case == 'int_dtype': _write(p, ECAL=e.astype(np.int32), energy=en, theta=th)
    elif case == 'length': _write(p, ECAL=e, energy=en[:3], theta=th)
    elif case == 'nan':
        bad = e.copy(); bad[1, 20, 20, 5] = np.nan; _write(p, ECAL=bad, energy=en, theta=th)
    elif case == 'degrees': _write(p, ECAL=e, energy=en, theta=np.degrees(th))
    elif case == 'truncated':
        raw = mc_file[0].read_bytes(); p.write_bytes(raw[:len(raw) // 2])
    elif case == 'not_hdf5': p.write_text('ECAL,energy,theta\n1,2,3\n')
    with pytest.raises(InputError) as ei: read_calo_h5(p)
    assert msg in str(ei.value) and str(p) in str(ei.value) and len(str(ei.value).splitlines()) == 1


def test_older_target_layout(tmp_path, small):
    p = _write(tmp_path/'old.h5', ECAL=small['ecal'], target=np.stack([np.zeros(4), small['energy'], np.zeros(4)], 1))
    d = read_calo_h5(p)
    assert np.allclose(d['energy'], small['energy']) and np.allclose(d['theta'], math.pi/2)


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
    assert np.allclose(ep, raw['energy'][keep] / 100) and np.allclose(ang, raw['theta'][keep])
    assert np.allclose(esum, sums[keep], rtol=1e-5)
    assert np.allclose(postprocess(x, 0.85), raw['ecal'][keep], rtol=1e-3, atol=1e-5)
    batches = list(calo_dataset(shards, batch_size=4, min_ecal_sum=10.0, shuffle=8, seed=0))
    assert all(b[0].shape[0] == 4 for b in batches) and len(batches) == keep.sum() // 4


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
