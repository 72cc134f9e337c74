"""Throughput benchmark, FLOP counts, the scaling model and the price table, as a user meets them.

No timed asserts: the benchmark's numbers are checked for structure and sanity only."""
import json, shutil
from pathlib import Path
import pytest, yaml
from conftest import ROOT, run, last_json, one_line_error


def _toy_flops():
    "Hand count of the toy GAN (tilegan_core.loops): G 8 -> 32 -> 32 -> 2, D 6 -> 32 -> 32 -> 1, ReLU hidden."
    g = (2*8*32 + 32 + 32) + (2*32*32 + 32 + 32) + (2*32*2 + 2)
    d = (2*6*32 + 32 + 32) + (2*32*32 + 32 + 32) + (2*32*1 + 1)
    return g, d, 3*d + (g + 3*d) + (3*g + 2*d)


@pytest.fixture(scope='module')
def bench(tmp_path_factory):
    "One real benchmark run: both loops on 2 logical devices, plus 2 local worker processes."
    out = tmp_path_factory.mktemp('bench')/'bench.json'
    r = run('tilegan-bench', '--model', 'toy', '--loop', 'custom,builtin', '--replicas', '2', '--workers', '2',
            '--steps', '3', '--warmup', '1', '--out', out, '--json')
    return last_json(r), out


@pytest.mark.slow
@pytest.mark.xdist_group('bench')
def test_bench_json_structure(bench):
    res, out = bench
    assert json.loads(out.read_text()) == res  # --out writes the same summary
    runs = res['runs']
    assert {(r['loop'], r['replicas'], r.get('workers', 0)) for r in runs} == {('custom', 2, 0), ('builtin', 2, 0), ('custom', 2, 2)}
    for r in runs:
        assert r['samples_per_s'] > 0 and r['step_s'] > 0 and 0 < r['mfu'] < 1 and r['timed_steps'] == 3
        assert r['global_batch'] == 8 * r['replicas']
    assert set(res['builtin_over_custom']) == {'2r'} and all(v > 0 for v in res['builtin_over_custom'].values())
    assert res['input']['samples_per_s'] > 0 and res['input_over_training'] > 0 and res['peak_gflops'] > 0
    assert set(res['samples_per_s']) == {'custom-2', 'builtin-2', 'custom-w2'}


@pytest.mark.slow
@pytest.mark.xdist_group('bench')
def test_bench_flops_match_hand_count(bench):
    g, d, train = _toy_flops()
    f = bench[0]['flops']
    assert (f['g_forward'], f['d_forward'], f['train_per_sample']) == (g, d, train)
    assert f['unknown_layers'] == []


@pytest.mark.parametrize('args, msg', [
    (['--loop', 'fit'], "--loop 'fit'"),
    (['--model', 'gpt'], "choose one of sat, calo, toy"),
    (['--replicas', '0'], '--replicas'),
    (['--model', 'sat', '--data', ''], '--model sat'),
])
def test_bench_bad_input(args, msg):
    line = one_line_error(run('tilegan-bench', *args, '--steps', '1'), 'tilegan-bench')
    assert msg in line, line


def test_flops_of_a_small_model_by_hand():
    import keras
    from tilegan_core.flops import model_flops
    m = keras.Sequential([keras.Input((5, 5, 2)), keras.layers.Conv2D(4, 3, padding='same', activation='relu'),
                          keras.layers.AveragePooling2D(5), keras.layers.Flatten(), keras.layers.Dense(3)])
    f = model_flops(m)
    conv = 2*25*9*2*4 + 100  # multiply-adds + bias
    assert f['by_kind'] == {'free': 0, 'linear': conv + 2*4*3 + 3, 'act': 100, 'pool': 25*4}
    assert f['train'] == 3 * f['forward']


def test_paper_fit_and_predictions():
    from tilegan_core import scaling as S
    g, d = S.gan3d_param_counts()
    nb = S.gradient_bytes(g, d)
    v100 = [q for q in S.PAPER_POINTS if q['group'] == 'v100']
    p, rms = S.fit(v100, nb)
    assert rms < 0.1
    summ = S.error_summary(S.predict(p, S.PAPER_POINTS, nb))
    assert set(summ) == {'v100', 'no_prefetch', 'layout', 'batch', 'tpu', 'azure'}
    assert summ['v100']['max_abs'] < 0.1
    # a plan on the pinned price table: spot is cheaper, efficiency never above 1 by much
    rows = S.plan(p, S.load_prices(), [1, 2, 4, 8, 16, 32, 64], nb, epochs=60)
    assert {r['provider'] for r in rows} == {'gcp', 'aws', 'azure'}
    assert all(r['train_usd_spot'] < r['train_usd'] and 0 < r['efficiency'] <= 1.05 for r in rows)


def test_price_table_is_verified(tmp_path):
    "A price table edited without re-pinning its manifest is refused with a one-line sha256 error."
    shutil.copytree(ROOT/'data_manifests'/'prices', tmp_path/'prices')
    shutil.copy(ROOT/'data_manifests'/'cloud_prices.yaml', tmp_path/'cloud_prices.yaml')
    out = last_json(run('tilegan-data-verify', tmp_path/'cloud_prices.yaml', '--data-dir', tmp_path/'prices', '--json'))
    assert out['ok'] and out['files'] == 1
    f = tmp_path/'prices'/'cloud_prices_2026.yaml'
    f.write_text(f.read_text().replace('on_demand: 2.86', 'on_demand: 0.01'))
    line = one_line_error(run('tilegan-data-verify', tmp_path/'cloud_prices.yaml', '--data-dir', tmp_path/'prices', '--json'),
                          'tilegan-data-verify')
    assert 'sha256 mismatch' in line or 'size' in line
    from tilegan_core.scaling import load_prices
    from tilegan_core.core import InputError
    bad = tmp_path/'bad.yaml'; bad.write_text(yaml.safe_dump({'rows': [{'provider': 'gcp', 'instance': 'x'}]}))
    with pytest.raises(InputError, match='misses hw'): load_prices(bad)
