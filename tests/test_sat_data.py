"""End-to-end tests of `tilegan-sat-tiles` and `tilegan_core.sat.data` on real GeoTIFFs written by rasterio:
both Sentinel-1 layouts (UNOSAT uint8, Sen1Floods11 float32 dB), GeoTIFF and GeoJSON masks, the Blue Marble
default, leak-free splits, and one-line errors on bad input."""
import json, os, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
import rasterio
from rasterio.transform import Affine, from_origin
from rasterio.windows import Window

from tilegan_core.sat.data import tile_scenes, sat_dataset, read_metadata, denormalise, open_scene, MaskReader
from tilegan_core.sat.scenes import sar_scene, write_sar_scene, blue_marble_geotiff
from tilegan_core.core import InputError

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
    "Real GeoTIFF inputs in both Sentinel-1 layouts plus Blue Marble, tiled by the console script (runs in parallel)."
    d = tmp_path_factory.mktemp('sat')
    s = sar_scene(128, 4, seed=5)
    s['valid'][:] = True; s['valid'][:, :20] = False                # a swath edge: nodata down the left side
    uno, uno_m = write_sar_scene(s, d/'uno.tif', d/'uno_water.tif', 'unosat')
    _, uno_gj = write_sar_scene(s, d/'uno2.tif', d/'uno_water.geojson', 'unosat')
    s1, s1_l = write_sar_scene(s, d/'s1.tif', d/'s1_label.tif', 'sen1floods11', index=1)
    bm, bm_w = blue_marble_geotiff(d/'bm')
    procs = dict(
        uno=_start(uno, '--mask', uno_m, '--tile-size', 16, '--out', d/'t_uno', '--split', 'none'),
        s1=_start(s1, '--mask', s1_l, '--tile-size', 16, '--stride', 16, '--out', d/'t_s1', '--split', 'none'),
        bm=_start(bm, '--mask', bm_w, '--tile-size', 128, '--out', d/'t_bm', '--split', 'none'))
    res = {k: _finish(p) for k, p in procs.items()}
    tile_scenes([(uno, uno_gj)], d/'t_gj', 16, split='none')      # the same scene with its GeoJSON mask, in-process
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
    meta = tile_scenes([(data['uno'], data['uno_m'])], tmp_path/'b', tile_size=8, stride=8, split='block', block=2,
                       val_fraction=0.25, test_fraction=0.25, seed=1)
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
    meta = tile_scenes(pairs, tmp_path/'s', tile_size=8, min_water=0.3, split='scene', val_fraction=0.34,
                       test_fraction=0.34)
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
    assert 'nodata' in _one_line_error(_run(blank, '--tile-size', 8, '--out', out), 'blank.tif')
    blocker = tmp_path/'file'; blocker.write_text('x')
    assert 'output folder' in _one_line_error(_run(data['uno'], '--tile-size', 8, '--out', blocker/'sub'), 'file/sub')
    # the rest in-process (same messages; the console script prints them as above)
    png = _write(tmp_path/'img.png', np.ones((32, 32), np.uint8), driver='PNG')
    two = _write(tmp_path/'two.tif', np.ones((2, 32, 32), np.uint8))
    far = _write(tmp_path/'far.tif', np.ones((64, 64), np.uint8), transform=from_origin(100000, 1000000, 10, 10), crs='EPSG:32736')
    for args, msg in [(([png], out, 8), r'img\.png: is a PNG raster, not a GeoTIFF'),
                      (([two], out, 8), r'two\.tif: 2 band\(s\) of uint8 is not a supported layout'),
                      (([data['uno']], out, 8, None, 0.0, 'none', 0.2, 0.2, 4, (-25, 5), 0, 512, 2), r'uno\.tif: has 1 band\(s\), expected 2'),
                      (([(data['uno'], far)], out, 8), r'far\.tif: mask lies outside the extent of uno\.tif'),
                      (([data['uno']], out, 128), r'uno\.tif: a 2x2 sample of tile size 128 needs 256 x 256 pixels')]:
        with pytest.raises(InputError, match=msg) as e: tile_scenes(*args)
        assert '\n' not in str(e.value)
    assert not out.exists() or not any(out.iterdir())               # nothing written by any failed run


def test_failure_leaves_no_shard(data, tmp_path):
    blank = _write(tmp_path/'blank.tif', np.zeros((64, 64), np.uint8), nodata=0)
    with pytest.raises(InputError, match='every pixel is nodata'):
        tile_scenes([data['uno'], blank], tmp_path/'o', tile_size=8, split='none', shard_size=4)
    assert list((tmp_path/'o').iterdir()) == []                     # shards of the first scene are removed too
