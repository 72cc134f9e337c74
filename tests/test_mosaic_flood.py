"""tilegan-mosaic and tilegan-validate end to end: real GeoTIFFs in and out, as a user runs them."""
import json, subprocess, sys
import numpy as np
import pytest
import rasterio
from conftest import ROOT, run, last_json, one_line_error
from tilegan_core.sat.mosaic import toy_seed, mask_path


@pytest.fixture(scope='module')
def seed(tmp_path_factory):
    return toy_seed(tmp_path_factory.mktemp('seed')/'seed.tif', 256)


def _mosaic(seed, out, rows, cols, *extra):
    img, msk = seed
    return last_json(run('tilegan-mosaic', '--run', 'copy', '--seed-image', img, '--seed-mask', msk, '--rows', rows,
                         '--cols', cols, '--out', out, '--json', *extra))


def test_mosaic_geotiff_continues_the_seed(seed, tmp_path):
    out = tmp_path/'m.tif'
    res = _mosaic(seed, out, 6, 10, '--method', 'paste', '--seed-row', 64, '--seed-col', 32)
    assert res['shape'] == [6 * 32, 10 * 32, 1] and res['tiles'] == [6, 10] and res['peak_rss_mb'] > 0
    assert {'seconds', 'seam_score', 'seam_score_by_distance'} <= set(res)
    with rasterio.open(out) as ds, rasterio.open(seed[0]) as sd, rasterio.open(mask_path(out)) as mk:
        assert (ds.width, ds.height, ds.count, ds.dtypes[0]) == (320, 192, 1, 'uint8')
        assert ds.crs == sd.crs and ds.profile['tiled'] and ds.compression.name.lower() == 'deflate'
        assert ds.transform == sd.transform @ rasterio.Affine.translation(32, 64)   # the seed's grid, offset to the window
        a, s = ds.read(1), sd.read(1)
        np.testing.assert_array_equal(a[:32, :224], s[64:96, 32:256])               # real first row, as far as the image reaches
        np.testing.assert_array_equal(a[:, :32], s[64:256, 32:64])                  # real first column
        assert (mk.width, mk.height, mk.crs) == (320, 192, sd.crs) and set(np.unique(mk.read(1))) <= {0, 1}


def test_blend_lowers_seams_and_memory_does_not_grow(seed, tmp_path):
    paste = _mosaic(seed, tmp_path/'p.tif', 8, 8, '--method', 'paste', '--seed-mode', 'tile')
    small = _mosaic(seed, tmp_path/'s.tif', 8, 8, '--method', 'blend', '--seed-mode', 'tile')
    big = _mosaic(seed, tmp_path/'b.tif', 48, 48, '--method', 'blend', '--seed-mode', 'tile')
    assert small['seam_score'] < paste['seam_score']
    assert big['shape'] == [48 * 32, 48 * 32, 1]
    assert big['peak_rss_mb'] < small['peak_rss_mb'] + 60, (small['peak_rss_mb'], big['peak_rss_mb'])  # 36x the pixels


def test_mosaic_from_noise(tmp_path):
    res = last_json(run('tilegan-mosaic', '--run', 'copy', '--rows', 3, '--cols', 4, '--out', tmp_path/'n.tif', '--json'))
    assert res['real_tiles'] == 0 and res['seed_mode'] == 'none'
    with rasterio.open(tmp_path/'n.tif') as ds: assert ds.crs is not None and (ds.width, ds.height) == (128, 96)


def test_mosaic_is_a_cloud_optimised_geotiff(seed, tmp_path):
    out = tmp_path/'c.tif'
    res = _mosaic(seed, out, 12, 12, '--seed-mode', 'tile')
    assert res['overviews'] == [2]
    for p in (out, mask_path(out)):
        with rasterio.open(p) as ds:
            assert ds.tags(ns='IMAGE_STRUCTURE').get('LAYOUT') == 'COG' and ds.overviews(1) == [2] and (ds.width, ds.height) == (384, 384)
    assert sorted(x.name for x in tmp_path.iterdir()) == ['c.tif', 'c_water.tif']          # no temporary strips left


def _guide(path, frac, crs='EPSG:32736'):
    with rasterio.open(path, 'w', driver='GTiff', width=frac.shape[1], height=frac.shape[0], count=1, dtype='float32', crs=crs,
                       transform=rasterio.transform.from_origin(500000, 100000, 320, 320)) as ds: ds.write(frac.astype(np.float32)[None])
    return path


def test_guided_mosaic_takes_the_guide_grid_and_reports_how_well_it_follows(tmp_path):
    frac = np.zeros((6, 8)); frac[:, :3] = 1; frac[2, 5] = 0.75
    g = _guide(tmp_path/'g.tif', frac)
    res = last_json(run('tilegan-mosaic', '--run', 'copy', '--guide', g, '--candidates', 3, '--out', tmp_path/'m.tif', '--json'))
    assert res['tiles'] == [6, 8] and res['shape'] == [6 * 32, 8 * 32, 1]           # one tile per guide cell
    assert res['guide']['kind'] == 'water' and res['guide']['candidates'] == 3 and res['guide']['cells'] == 48
    assert 0 <= res['guide']['iou'] <= 1 and 0 <= res['guide']['mae'] <= 1
    with rasterio.open(tmp_path/'m.tif') as ds, rasterio.open(g) as gd:
        assert ds.crs == gd.crs and ds.bounds == gd.bounds and ds.res == (10.0, 10.0)   # the guide's extent at full resolution
        water = rasterio.open(mask_path(tmp_path/'m.tif')).read(1)
    coarse = water.reshape(6, 32, 8, 32).mean((1, 3))
    assert abs(np.abs(coarse - frac).mean() - res['guide']['mae']) < 1e-6             # the reported agreement is the mask's
    res2 = last_json(run('tilegan-mosaic', '--run', 'copy', '--guide', g, '--guide-cells', 2, '--out', tmp_path/'m2.tif', '--json'))
    assert res2['tiles'] == [3, 4] and res2['guide']['cells_per_tile'] == 2                # 2 x 2 guide pixels per tile
    assert res2['guide']['cells'] == 48 and res2['guide']['per_tile']['cells'] == 12


@pytest.mark.parametrize('args, msg', [
    (['--guide', 'nowhere.tif'], 'nowhere.tif'),
    (['--guide', 'g.tif', '--rows', 100, '--cols', 100], 'cannot be averaged'),
    (['--guide', 'g.tif', '--candidates', 0], '--candidates'),
    (['--guide', 'g.tif', '--guide-cells', 3], '--guide-cells 3: use a power of two'),
    (['--guide', 'g.tif', '--guide-cells', 64, '--rows', 1, '--cols', 1], "tile's 32 pixels"),
])
def test_guided_mosaic_bad_input(tmp_path, args, msg):
    _guide(tmp_path/'g.tif', np.full((4, 4), 0.5))
    r = run('tilegan-mosaic', '--run', 'copy', '--out', 'x.tif', *args, cwd=tmp_path)
    assert msg in one_line_error(r, 'tilegan-mosaic')
    assert not (tmp_path/'x.tif').exists()


@pytest.mark.parametrize('args, msg', [
    (['--run', 'copy', '--rows', 2, '--cols', 2], '--out is required'),
    (['--run', 'nowhere', '--rows', 2, '--cols', 2, '--out', 'x.tif'], '--run nowhere: no such folder'),
    (['--run', 'copy', '--rows', 2, '--cols', 2, '--out', 'x.tif', '--method', 'wave'], '--method'),
])
def test_mosaic_bad_input(tmp_path, args, msg):
    assert msg in one_line_error(run('tilegan-mosaic', *args, cwd=tmp_path), 'tilegan-mosaic')
    assert not (tmp_path/'x.tif').exists()


def test_mosaic_refuses_a_seed_with_nodata(tmp_path):
    img, _ = toy_seed(tmp_path/'s.tif', 64)
    with rasterio.open(img, 'r+') as ds: a = ds.read(1); a[3, 3] = 0; ds.write(a[None])
    r = run('tilegan-mosaic', '--run', 'copy', '--seed-image', img, '--rows', 2, '--cols', 2, '--out', tmp_path/'x.tif')
    assert 'holds nodata' in one_line_error(r, 'tilegan-mosaic')


@pytest.mark.slow
def test_validate_flood_on_real_tiles(tmp_path):
    from tilegan_core.sat.scenes import make_sar_scenes
    from tilegan_core.sat.data import tile_scenes, TilingSpec, SplitSpec
    pairs = make_sar_scenes(tmp_path/'scenes', 4, 64, 4, seed=1)
    tile_scenes(pairs, tmp_path/'tiles', TilingSpec(16, stride=16), SplitSpec(method='scene', val_fraction=0.0, test_fraction=0.25))
    res = last_json(run('tilegan-validate', 'flood', '--run', 'copy', '--data', tmp_path/'tiles', '--out', tmp_path/'v.json',
                        '--set', 'flood.seeds=[0,1],flood.real_fractions=[1.0],flood.epochs=1,flood.filters=4,flood.depth=2', '--json'))
    for s in ('real_only', 'real_plus_synthetic', 'synthetic_only'):
        assert set(res[s]['iou']) == {'mean', 'std'} and 0 <= res[s]['csi']['mean'] <= 1
    g = res['gain_by_fraction']['1']['iou']                       # paired over the two seeds, with a t-interval
    assert g['seeds'] == 2 and g['ci_low'] <= g['mean'] <= g['ci_high']
    assert abs(g['mean'] - (res['real_plus_synthetic']['iou']['mean'] - res['real_only']['iou']['mean'])) < 1e-9
    assert res['frechet_distance'] >= 0 and res['test_tiles'] > 0 and res['synthetic_tiles'] == res['train_tiles'] > 0
    assert json.loads((tmp_path/'v.json').read_text())['frechet_distance'] == res['frechet_distance']
    cal = res['label_calibration']                                # the copy labels its dark pixels water: shadow wet, flooded vegetation dry
    assert abs(sum(cal['synthetic']['share']) - 1) < 1e-9 and len(cal['real']['p_water']) == 10
    assert 0.05 < res['label_gap'] <= 1, res['label_gap']


def test_validate_bad_input(tmp_path):
    r = run('tilegan-validate', 'calo', '--run', tmp_path)
    assert '--reference is required' in one_line_error(r, 'tilegan-validate')
    r = run('tilegan-validate', 'flood', '--run', 'copy', '--data', tmp_path/'none')
    assert 'metadata.json: missing' in one_line_error(r, 'tilegan-validate')


def _bench(tmp_path, *args):
    "Run the mosaic benchmark script in `tmp_path`."
    return subprocess.run([sys.executable, str(ROOT/'scripts'/'bench_mosaic.py'), *map(str, args)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=600)


def test_bench_mosaic_grows_cogs_fits_time_against_tiles_and_refits(tmp_path):
    res = last_json(_bench(tmp_path, '--run', 'copy', '--sizes', '256,512', '--predict', '1024', '--out', 'b.json'))
    assert [(r['pixels'], r['tiles'], r['layout'], r['shape']) for r in res['runs']] == [(256, 64, 'COG', [256, 256]), (512, 256, 'COG', [512, 512])]
    assert all(r['peak_rss_mb'] > 0 and r['seconds'] > 0 for r in res['runs']) and res['runs'][-1]['overviews'] == [2]
    fit = res['fit']
    assert fit['ms_per_tile'] > 0 and fit['max_relative_residual'] == 0 and np.isfinite(fit['exponent'])  # 2 points: exact
    assert abs(fit['predicted_seconds']['1024'] - (fit['intercept_s'] + fit['ms_per_tile'] * 1024 / 1e3)) <= 1
    assert json.loads((tmp_path/'b.json').read_text()) == res and not list(tmp_path.glob('*.tmp'))
    again = last_json(_bench(tmp_path, '--refit', 'b.json', '--predict', '2048,4096'))
    assert again['runs'] == res['runs'] and set(again['fit']['predicted_seconds']) == {'2048', '4096'}


@pytest.mark.parametrize('args, msg', [([], 'give --run RUN'), (['--refit', 'none.json'], '--refit none.json: not a benchmark result')])
def test_bench_mosaic_bad_input(tmp_path, args, msg):
    assert msg in one_line_error(_bench(tmp_path, *args), 'bench_mosaic.py')
