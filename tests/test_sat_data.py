"""End-to-end tests of `tilegan-sat-tiles` and `tilegan_core.sat.data` on real files written by rasterio and fiona:
both Sentinel-1 layouts (UNOSAT uint8, Sen1Floods11 float32 dB, also as a chip folder with its official split
CSVs), int16 13-band Sentinel-2 with a band selection, GeoTIFF, GeoJSON, shapefile and GeoPackage masks in other
CRSs, the Blue Marble default, leak-free splits, re-runs into a data set, and one-line errors on bad input."""
import json, os, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
import rasterio
from rasterio.transform import Affine, from_origin
from rasterio.windows import Window

from tilegan_core.sat.data import tile_scenes, TilingSpec, SplitSpec, sat_dataset, read_metadata, denormalise, open_scene, MaskReader
from tilegan_core.sat.scenes import sar_scene, write_sar_scene, blue_marble_geotiff
from tilegan_core.core import InputError

pytestmark = pytest.mark.xdist_group('sat_data')  # one worker builds the module's data fixtures once

BIN = Path(sys.executable).parent
CLI = str(BIN/'tilegan-sat-tiles')
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', CUDA_VISIBLE_DEVICES='')


def _write(path, arr, crs='EPSG:32633', transform=from_origin(500000, 4000000, 10, 10), nodata=None, driver='GTiff'):
    arr = arr if arr.ndim == 3 else arr[None]
    with rasterio.open(path, 'w', driver=driver, width=arr.shape[2], height=arr.shape[1], count=arr.shape[0],
                       dtype=arr.dtype, crs=crs, transform=transform, nodata=nodata) as ds: ds.write(arr)
    return Path(path)


def _start(*args):
    return subprocess.Popen([CLI, *map(str, args), '--json'], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)


def _finish(p):
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-2000:]
    return json.loads(out.strip().splitlines()[-1])


def _run(*args):
    return subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, env=ENV, timeout=300)


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    "Real GeoTIFF inputs in both Sentinel-1 layouts plus Blue Marble: one tiled by the console script, the rest in-process."
    d = tmp_path_factory.mktemp('sat')
    s = sar_scene(128, 4, seed=5)
    s['valid'][:] = True; s['valid'][:, :20] = False                # a swath edge: nodata down the left side
    uno, uno_m = write_sar_scene(s, d/'uno.tif', d/'uno_water.tif', 'unosat')
    _, uno_gj = write_sar_scene(s, d/'uno2.tif', d/'uno_water.geojson', 'unosat')
    s1, s1_l = write_sar_scene(s, d/'s1.tif', d/'s1_label.tif', 'sen1floods11', index=1)
    bm, bm_w = blue_marble_geotiff(d/'bm')
    uno_run = _start(uno, '--mask', uno_m, '--tile-size', 16, '--out', d/'t_uno', '--split', 'none')
    none = SplitSpec(method='none')
    # the library call the console script makes, without another TensorFlow start-up per data set
    res = dict(s1=tile_scenes([(s1, s1_l)], d/'t_s1', TilingSpec(16, stride=16), none),
               bm=tile_scenes([(bm, bm_w)], d/'t_bm', TilingSpec(128), none), uno=_finish(uno_run))
    tile_scenes([(uno, uno_gj)], d/'t_gj', TilingSpec(16), none)      # the same scene with its GeoJSON mask
    return dict(dir=d, scene=s, uno=uno, uno2=d/'uno2.tif', uno_m=uno_m, uno_gj=uno_gj, s1=s1, s1_l=s1_l, bm=bm, bm_w=bm_w, res=res)


def _samples(folder, split='train'):
    "All samples of a split: normalised images, masks and geotransforms as NumPy arrays."
    ims, ms, ts = [], [], []
    for im, m, t in sat_dataset(folder, split, batch_size=64, shuffle=False, with_transform=True):
        ims.append(im.numpy()); ms.append(m.numpy()); ts.append(t.numpy())
    return np.concatenate(ims), np.concatenate(ms), np.concatenate(ts)


def _window(scene_tf, t, n):
    "The scene window of a sample whose geotransform is `t`."
    col, row = ~scene_tf @ (t[2], t[5])
    assert abs(col - round(col)) < 1e-6 and abs(row - round(row)) < 1e-6
    return Window(round(col), round(row), n, n)


def test_unosat_counts_crs_transforms_masks(data):
    r, d = data['res']['uno'], data['dir']
    # 128 px scene, 32 px samples, stride 32: 4 x 4 samples; the first column holds nodata
    assert (r['tile_size'], r['bands'], r['crs']) == (16, 1, 'EPSG:32736')
    assert r['skipped'] == {'nodata': 4} and r['count'] == 12
    meta = read_metadata(d/'t_uno')
    assert meta['normalisation'] == dict(kind='dn8', low=0.0, high=255.0, dtype='uint8')
    assert meta['sources'][0]['sha256'] and meta['counts'] == {'train': 12, 'val': 0, 'test': 0}
    ims, ms, ts = _samples(d/'t_uno')
    assert ims.shape == (12, 32, 32, 1) and ms.shape == (12, 32, 32, 1)
    with rasterio.open(data['uno']) as src, rasterio.open(data['uno_m']) as msrc:
        for im, m, t in zip(ims, ms, ts):
            assert Affine(*t).a == src.transform.a and Affine(*t).e == src.transform.e
            w = _window(src.transform, t, 32)
            np.testing.assert_array_equal(denormalise(im[..., 0], meta['normalisation']), src.read(1, window=w))
            np.testing.assert_array_equal(m[..., 0].astype(np.uint8), msrc.read(1, window=w))
    assert ms.sum() > 0                                          # some samples hold water


def test_geojson_mask_matches_geotiff_mask(data):
    assert read_metadata(data['dir']/'t_gj')['count'] == data['res']['uno']['count']
    _, m_tif, t_tif = _samples(data['dir']/'t_uno')
    _, m_gj, t_gj = _samples(data['dir']/'t_gj')
    np.testing.assert_array_equal(t_tif, t_gj)
    np.testing.assert_array_equal(m_tif, m_gj)


def test_sen1floods11_db_bands_and_labels(data):
    r, d = data['res']['s1'], data['dir']
    assert (r['bands'], r['crs']) == (2, 'EPSG:4326')
    # stride 16 on 128 px: 7 x 7 samples; those touching the NaN/-1 columns are skipped
    assert r['count'] == 35 and r['skipped'] == {'nodata': 14}
    meta = read_metadata(d/'t_s1')
    assert meta['normalisation']['kind'] == 'db' and meta['dtype'] == 'float32'
    ims, ms, ts = _samples(d/'t_s1')
    lo, hi = meta['normalisation']['low'], meta['normalisation']['high']
    with rasterio.open(data['s1']) as src, rasterio.open(data['s1_l']) as lsrc:
        for im, m, t in list(zip(ims, ms, ts))[::5]:
            w = _window(src.transform, t, 32)
            db = src.read(window=w).transpose(1, 2, 0)                 # (32, 32, 2): VV, VH
            np.testing.assert_allclose(denormalise(im, meta['normalisation']), np.clip(db, lo, hi), atol=1e-4)
            lab = lsrc.read(1, window=w)
            assert (lab >= 0).all()
            np.testing.assert_array_equal(m[..., 0], lab)
    # water is dark in VV
    assert np.median(ims[..., 0][ms[..., 0] > 0]) < np.median(ims[..., 0][ms[..., 0] == 0]) - 0.2


def test_blue_marble_default(data):
    r, d = data['res']['bm'], data['dir']
    # 5400 x 2700 px, 256 px samples: 21 x 10, no nodata in the optical layout
    assert (r['count'], r['bands'], r['crs'], r['skipped']) == (210, 3, 'EPSG:4326', {})
    ims, ms, ts = _samples(d/'t_bm')
    assert ims.shape == (210, 256, 256, 3)
    deg = 360 / 5400
    t = Affine(*ts[0])
    assert (t.c, t.f) == (-180.0, 90.0) and abs(t.a - deg) < 1e-12 and abs(t.e + deg) < 1e-12
    last = Affine(*ts[-1])
    assert abs(last.c - (-180 + 20 * 256 * deg)) < 1e-9 and abs(last.f - (90 - 9 * 256 * deg)) < 1e-9
    with rasterio.open(data['bm_w']) as wm:
        for m, tt in list(zip(ms, ts))[::37]:
            np.testing.assert_array_equal(m[..., 0].astype(np.uint8), wm.read(1, window=_window(wm.transform, tt, 256)))
    assert 0.5 < ms.mean() < 0.8                                    # mostly ocean
    assert ims[..., 2][ms[..., 0] > 0].mean() > ims[..., 0][ms[..., 0] > 0].mean()   # the sea is blue


def test_mask_on_other_grid_is_reprojected(data, tmp_path):
    sc = open_scene(data['uno'])
    from rasterio.warp import calculate_default_transform, reproject
    from rasterio.enums import Resampling
    t84, w, h = calculate_default_transform(sc.crs, 'EPSG:4326', sc.width, sc.height, *sc.bounds)
    water = data['scene']['water'].astype(np.uint8)
    m84 = np.zeros((h, w), np.uint8)
    reproject(water, m84, src_transform=sc.affine, src_crs=sc.crs, dst_transform=t84, dst_crs='EPSG:4326',
              resampling=Resampling.nearest)
    p = _write(tmp_path/'m84.tif', m84, crs='EPSG:4326', transform=t84)
    with MaskReader(p, sc) as mr: lab = mr.read(Window(0, 0, sc.width, sc.height))
    known = lab >= 0
    assert known.mean() > 0.9 and (lab[known] == water[known]).mean() > 0.95


def test_block_split_has_no_neighbours_across_splits(data, tmp_path):
    meta = tile_scenes([(data['uno'], data['uno_m'])], tmp_path/'b', TilingSpec(8, stride=8), SplitSpec(method='block', val_fraction=0.25, test_fraction=0.25, block=2, seed=1))
    assert all(meta['counts'][s] > 0 for s in ('train', 'val', 'test'))
    boxes = {}
    for s in ('train', 'val', 'test'):
        _, _, ts = _samples(tmp_path/'b', s)
        boxes[s] = [~open_scene(data['uno']).affine @ (t[2], t[5]) for t in ts]
    n, gap = 16, 8
    for a in boxes:
        for b in boxes:
            if a == b: continue
            for (ca, ra) in boxes[a]:
                for (cb, rb) in boxes[b]:
                    assert ra + n + gap <= rb or rb + n + gap <= ra or ca + n + gap <= cb or cb + n + gap <= ca


def test_scene_split_and_min_water(data, tmp_path):
    pairs = [(data['uno'], data['uno_m']), (data['uno2'], data['uno_gj']), (data['uno'], data['uno_gj'])]
    meta = tile_scenes(pairs, tmp_path/'s', TilingSpec(8, min_water=0.3), SplitSpec(method='scene', val_fraction=0.34, test_fraction=0.34))
    assert sorted(s['split'] for s in meta['sources']) == ['test', 'train', 'val']
    assert meta['skipped']['low_water'] > 0
    for s in ('train', 'val', 'test'):
        if meta['counts'][s]:
            _, ms, _ = _samples(tmp_path/'s', s)
            assert (ms.mean(axis=(1, 2, 3)) >= 0.3).all()


def _one_line_error(r, name):
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and name in lines[0] and 'error:' in lines[0], r.stderr
    return lines[0]


def test_bad_inputs(data, tmp_path):
    d = data['dir']
    out = tmp_path/'out'
    (tmp_path/'notes.tif').write_text('hello')
    _one_line_error(_run(tmp_path/'notes.tif', '--tile-size', 8, '--out', out), 'notes.tif')
    (tmp_path/'empty.tif').write_bytes(b'')
    assert 'empty file' in _one_line_error(_run(tmp_path/'empty.tif', '--tile-size', 8, '--out', out), 'empty.tif')
    blank = _write(tmp_path/'blank.tif', np.zeros((64, 64), np.uint8), nodata=0)
    assert 'nodata' in _one_line_error(_run(blank, '--tile-size', 8, '--out', out, '--split', 'none'), 'blank.tif')
    blocker = tmp_path/'file'; blocker.write_text('x')
    assert 'output folder' in _one_line_error(_run(data['uno'], '--tile-size', 8, '--out', blocker/'sub'), 'file/sub')
    # the rest in-process (same messages; the console script prints them as above)
    png = _write(tmp_path/'img.png', np.ones((32, 32), np.uint8), driver='PNG')
    two = _write(tmp_path/'two.tif', np.ones((2, 32, 32), np.uint8))
    far = _write(tmp_path/'far.tif', np.ones((64, 64), np.uint8), transform=from_origin(100000, 1000000, 10, 10), crs='EPSG:32736')
    for args, msg in [(([png], out, TilingSpec(8)), r'img\.png: is a PNG raster, not a GeoTIFF'),
                      (([two], out, TilingSpec(8)), r'two\.tif: 2 band\(s\) of uint8 is not a supported layout'),
                      (([data['uno']], out, TilingSpec(8, db_range=(-25, 5), bands=2), SplitSpec('none')), r'uno\.tif: has 1 band\(s\), expected 2'),
                      (([(data['uno'], far)], out, TilingSpec(8)), r'far\.tif: mask lies outside the extent of uno\.tif'),
                      (([data['uno']], out, TilingSpec(128)), r'uno\.tif: a 2x2 sample of tile size 128 needs 256 x 256 pixels')]:
        with pytest.raises(InputError, match=msg) as e: tile_scenes(*args)
        assert '\n' not in str(e.value)
    assert not out.exists() or not any(out.iterdir())               # nothing written by any failed run


def test_failure_leaves_no_shard(data, tmp_path):
    blank = _write(tmp_path/'blank.tif', np.zeros((64, 64), np.uint8), nodata=0)
    with pytest.raises(InputError, match='every pixel is nodata'):
        tile_scenes([data['uno'], blank], tmp_path/'o', TilingSpec(8, shard_size=4), SplitSpec(method='none'))
    assert list((tmp_path/'o').iterdir()) == []                     # shards of the first scene are removed too


# ---- real layouts as users download them -------------------------------------------------------------------

CHIPS = ['Bolivia_103757', 'Ghana_103272', 'India_1018327', 'Paraguay_12870', 'Spain_7370579']


@pytest.fixture(scope='module')
def s1f(tmp_path_factory):
    "A Sen1Floods11 HandLabeled folder (S1Hand/ and LabelHand/) of five 64 px chips, with the official split CSVs."
    d = tmp_path_factory.mktemp('s1f')
    hl = d/'HandLabeled'
    for sub in ('S1Hand', 'LabelHand'): (hl/sub).mkdir(parents=True)
    for i, c in enumerate(CHIPS):
        s = sar_scene(64, 4, seed=10 + i); s['valid'][:] = True
        write_sar_scene(s, hl/'S1Hand'/f'{c}_S1Hand.tif', hl/'LabelHand'/f'{c}_LabelHand.tif', 'sen1floods11', index=i)
    rows = lambda cs: ''.join(f'{c}_S1Hand.tif,{c}_LabelHand.tif\n' for c in cs)
    (d/'flood_train_data.csv').write_text(rows(CHIPS[1:4]))
    (d/'flood_valid_data.csv').write_text(rows(CHIPS[4:]))
    (d/'flood_bolivia_data.csv').write_text(rows(CHIPS[:1]))
    return d


def _chip_of(transforms, s1f):
    "Chip id of each sample, found from its geotransform inside the chips' extents."
    out = []
    for t in transforms:
        x, y = t[2], t[5]
        hits = [c for c in CHIPS if (lambda b: b.left <= x < b.right and b.bottom < y <= b.top)(rasterio.open(s1f/'HandLabeled'/'S1Hand'/f'{c}_S1Hand.tif').bounds)]
        assert len(hits) == 1
        out.append(hits[0])
    return out


def test_sen1floods11_folder_scene_split(s1f, tmp_path):
    r = _finish(_start(s1f/'HandLabeled', '--tile-size', 16, '--split', 'scene', '--out', tmp_path/'t'))
    # five chips, profile shares 0.2/0.2: one chip each to val and test, three to train
    assert (r['bands'], r['band_names'], r['crs'], r['scenes']) == (2, ['VV', 'VH'], 'EPSG:4326', 5)
    meta = read_metadata(tmp_path/'t')
    assert sorted(s['split'] for s in meta['sources']) == ['test', 'train', 'train', 'train', 'val']
    assert [Path(s['image']).name.replace('_S1Hand', '_LabelHand') for s in meta['sources']] == [Path(s['mask']).name for s in meta['sources']]
    # VV and VH keep their own dB ranges, recorded in the metadata
    assert (meta['normalisation']['low'], meta['normalisation']['high']) == ([-25.0, -35.0], [5.0, -5.0])
    split_of = {Path(s['image']).name.split('_S1Hand')[0]: s['split'] for s in meta['sources']}
    for sp in ('train', 'val', 'test'):
        ims, ms, ts = _samples(tmp_path/'t', sp)
        chips = _chip_of(ts, s1f)
        assert {split_of[c] for c in chips} == {sp}                     # whole chips per split
        for im, m, t, c in list(zip(ims, ms, ts, chips))[::3]:
            with rasterio.open(s1f/'HandLabeled'/'S1Hand'/f'{c}_S1Hand.tif') as src, \
                 rasterio.open(s1f/'HandLabeled'/'LabelHand'/f'{c}_LabelHand.tif') as lab:
                w = _window(src.transform, t, 32)
                db = src.read(window=w).transpose(1, 2, 0)
                np.testing.assert_allclose(denormalise(im, meta['normalisation']), np.clip(db, [-25, -35], [5, -5]), atol=1e-4)
                np.testing.assert_array_equal(m[..., 0], lab.read(1, window=w))   # the label of the same chip


def test_sen1floods11_official_split_csvs(s1f, tmp_path):
    r = _finish(_start(s1f/'HandLabeled', '--tile-size', 16, '--out', tmp_path/'t', '--split-csv',
                       s1f/'flood_train_data.csv', s1f/'flood_valid_data.csv', f"test={s1f/'flood_bolivia_data.csv'}"))
    meta = read_metadata(tmp_path/'t')
    assert {Path(s['image']).name.split('_S1Hand')[0]: s['split'] for s in meta['sources']} == dict(
        zip(CHIPS, ['test', 'train', 'train', 'train', 'val']))
    assert meta['split']['method'] == 'csv' and r['warnings'] == []
    # only the training CSV: val and test would be empty -> a warning with the counts, never silent
    p = subprocess.run([CLI, *map(str, [s1f/'HandLabeled', '--tile-size', 16, '--out', tmp_path/'u', '--split-csv', s1f/'flood_train_data.csv']), '--json'],
                       capture_output=True, text=True, env=ENV, timeout=300)
    assert p.returncode == 0, p.stderr
    warn = [l for l in p.stderr.splitlines() if l.startswith('tilegan-sat-tiles: warning: ')]
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert len(warn) == 2 and "left val and test without samples (train" in warn[0] and f"val 0, test 0" in warn[0]
    assert '2 scene(s) are in none of the split CSVs' in warn[1] and res['warnings'] == [w.split('warning: ', 1)[1] for w in warn]
    assert read_metadata(tmp_path/'u')['warnings'] == res['warnings']


def _polygons(water, transform, crs, dst_crs):
    "Water polygons of a binary mask, reprojected to `dst_crs` (GeoJSON-like dicts)."
    from rasterio import features, warp
    return [warp.transform_geom(crs, dst_crs, g) for g, v in features.shapes(water.astype(np.uint8), transform=transform) if v == 1]


def test_shapefile_mask_in_another_crs(data, tmp_path):
    import fiona
    sc = open_scene(data['uno'])
    polys = _polygons(data['scene']['water'], sc.affine, sc.crs, 'EPSG:4326')   # the image is UTM, the shapefile WGS84
    shp = tmp_path/'flood_extent.shp'
    with fiona.open(shp, 'w', driver='ESRI Shapefile', crs='EPSG:4326', schema={'geometry': 'Polygon', 'properties': {'id': 'int'}}) as dst:
        for i, g in enumerate(polys): dst.write(fiona.Feature(geometry=fiona.Geometry.from_dict(g), properties={'id': i}))
    assert {p.suffix for p in tmp_path.iterdir()} >= {'.shp', '.shx', '.dbf', '.prj'}
    r = _finish(_start(data['uno'], '--mask', shp, '--tile-size', 16, '--out', tmp_path/'t', '--split', 'none'))
    assert r['count'] == data['res']['uno']['count']
    _, m_tif, t_tif = _samples(data['dir']/'t_uno')
    _, m_shp, t_shp = _samples(tmp_path/'t')
    np.testing.assert_array_equal(t_tif, t_shp)
    np.testing.assert_array_equal(m_tif, m_shp)
    # the same polygons as a GeoPackage in Web Mercator label the same pixels
    gpkg = tmp_path/'flood.gpkg'
    # no R-tree: TensorFlow's bundled SQLite, loaded first in this process, lacks the module GDAL builds it with
    with fiona.open(gpkg, 'w', driver='GPKG', crs='EPSG:3857', schema={'geometry': 'Polygon', 'properties': {}}, SPATIAL_INDEX='NO') as dst:
        for g in _polygons(data['scene']['water'], sc.affine, sc.crs, 'EPSG:3857'):
            dst.write(fiona.Feature(geometry=fiona.Geometry.from_dict(g), properties={}))
    with MaskReader(gpkg, sc) as mr: lab = mr.read(Window(0, 0, sc.width, sc.height))
    np.testing.assert_array_equal(lab, data['scene']['water'].astype(np.int8))


def test_int16_sentinel2_with_band_selection(tmp_path):
    rng = np.random.default_rng(3)
    s2 = (rng.integers(0, 3000, (13, 64, 64)) + np.arange(13)[:, None, None] * 500).astype(np.int16)
    img = _write(tmp_path/'Spain_7370579_S2Hand.tif', s2, crs='EPSG:4326', transform=from_origin(-6.0, 37.0, 1e-4, 1e-4))
    r = _finish(_start(img, '--bands', '4,3,2', '--tile-size', 16, '--out', tmp_path/'t', '--split', 'none'))
    assert (r['count'], r['bands'], r['band_names']) == (4, 3, ['B4', 'B3', 'B2'])
    meta = read_metadata(tmp_path/'t')
    assert meta['dtype'] == 'int16' and meta['normalisation'] == dict(kind='reflectance', low=0.0, high=10000.0, dtype='int16')
    ims, _, ts = _samples(tmp_path/'t')
    with rasterio.open(img) as src:
        for im, t in zip(ims, ts):
            np.testing.assert_array_equal(denormalise(im, meta['normalisation']),
                                          src.read([4, 3, 2], window=_window(src.transform, t, 32)).transpose(1, 2, 0))


def test_rerun_refuses_then_appends_or_overwrites(data, tmp_path):
    out = tmp_path/'t'
    first = _finish(_start(data['uno'], '--mask', data['uno_m'], '--tile-size', 16, '--out', out, '--split', 'none'))
    shards0 = {p.name: p.read_bytes() for p in out.glob('*.tfrecord')}
    msg = _one_line_error(_run(data['uno'], '--mask', data['uno_m'], '--tile-size', 16, '--out', out, '--split', 'none'), 't')
    assert f"already holds a tiled data set of {first['count']} samples; pass --append" in msg
    assert 'already in the data set' in _one_line_error(_run(data['uno2'], '--tile-size', 16, '--out', out, '--split', 'none', '--append'), 'uno2.tif')
    other, other_m = write_sar_scene(sar_scene(128, 4, seed=6), tmp_path/'other.tif', tmp_path/'other_water.geojson', 'unosat', index=1)
    two = tile_scenes([(other, other_m)], tmp_path/'two', TilingSpec(16), SplitSpec(method='none'))   # the other scene alone
    both = _finish(_start(other, '--mask', other_m, '--tile-size', 16, '--out', out, '--split', 'none', '--append'))
    assert both['count'] == first['count'] + two['count'] and both['scenes'] == 2
    assert all((out/n).read_bytes() == b for n, b in shards0.items())           # the first scene's samples are untouched
    meta = read_metadata(out)
    assert len(meta['runs']) == 2 and meta['counts']['train'] == both['count']
    assert len(_samples(out)[0]) == both['count']
    again = _finish(_start(other, '--tile-size', 16, '--out', out, '--split', 'none', '--overwrite'))
    assert again['count'] == two['count'] and len(read_metadata(out)['sources']) == 1
    assert sorted(p.name for p in out.iterdir()) == sorted(['metadata.json'] + [d['file'] for d in read_metadata(out)['shards']])


def test_refusals_of_real_layouts(data, s1f, tmp_path):
    from rasterio.control import GroundControlPoint
    out = tmp_path/'out'
    gcp8 = tmp_path/'grd8.tif'                                               # like a GRD measurement file: GCPs, no grid
    with rasterio.open(gcp8, 'w', driver='GTiff', width=64, height=64, count=1, dtype='uint8') as ds:
        ds.write(np.ones((1, 64, 64), np.uint8))
        ds.gcps = ([GroundControlPoint(0, 0, 10.0, 45.0), GroundControlPoint(64, 0, 10.1, 45.0), GroundControlPoint(0, 64, 10.0, 44.9)], 'EPSG:4326')
    assert 'ground control points' in _one_line_error(_run(gcp8, '--tile-size', 8, '--out', out), 'grd8.tif')
    assert 'gdalwarp' in _one_line_error(_run(gcp8, '--tile-size', 8, '--out', out), 'grd8.tif')
    # two scenes cannot give train, val and test scenes
    msg = _one_line_error(_run(data['uno'], data['uno2'], '--tile-size', 16, '--split', 'scene', '--out', out), 'scene')
    assert '2 scene(s) are too few for val 0.2 and test 0.2' in msg
    # an unpaired chip
    lone = tmp_path/'flat'; lone.mkdir()
    for f in (s1f/'HandLabeled'/'S1Hand').glob('*.tif'): (lone/f.name).write_bytes(f.read_bytes())
    for f in (s1f/'HandLabeled'/'LabelHand').glob('*.tif'):
        if not f.name.startswith('Bolivia'): (lone/f.name).write_bytes(f.read_bytes())
    assert 'has no Bolivia_103757_LabelHand.tif' in _one_line_error(_run(lone, '--tile-size', 16, '--out', out), 'Bolivia_103757_S1Hand.tif')
    # a band index the scene does not have
    s2 = _write(tmp_path/'s2.tif', np.ones((13, 32, 32), np.int16), crs='EPSG:4326', transform=from_origin(-6.0, 37.0, 1e-4, 1e-4))
    assert '--bands 4,14: the scene has 13 band(s)' in _one_line_error(_run(s2, '--bands', '4,14', '--tile-size', 8, '--out', out), 's2.tif')
    assert "--bands 'red'" in _one_line_error(_run(s2, '--bands', 'red', '--tile-size', 8, '--out', out), 'red')
    # a mask count that matches neither one-for-all nor one-per-scene
    assert 'one mask for all 2 scene(s)' in _one_line_error(
        _run(data['uno'], data['uno2'], '--mask', data['uno_m'], data['uno_gj'], data['uno_m'], '--tile-size', 16, '--out', out), 'mask')
    assert not out.exists() or not any(out.iterdir())                         # nothing written by any refusal
