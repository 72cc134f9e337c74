"""Benchmark tilegan-mosaic: grow square mosaics of several sizes into Cloud-Optimised GeoTIFFs, each in a
fresh process, and report seconds, tiles per second and peak resident memory, with a straight-line fit of
seconds against tiles that predicts the sizes not run, and the exponent of seconds against tiles (1 is linear).

Usage: python scripts/bench_mosaic.py --run RUN [--sizes 4096,8192,16384] [--predict 32768] [--band 32]
                                      [--work DIR] [--keep] [--out bench.json]
       python scripts/bench_mosaic.py --refit bench.json [--predict 65536]   (fit the runs of a saved result again)
"""
import argparse, json, shutil, sys, tempfile, time
from pathlib import Path
import numpy as np
import rasterio
from tilegan_core.config import load_profile
from tilegan_core.sat.mosaic import run_mosaic, mask_path


def bench(run, sizes, band, work, keep, profile='quick'):
    "One fresh `tilegan-mosaic` process per size (pixels per side); its summary, wall time and COG layout."
    T = load_profile(profile).sat.tile_size
    rows = []
    for px in sizes:
        n = px // T
        out = Path(work)/f'bench_{px}.tif'
        t0 = time.perf_counter()
        r = run_mosaic(['--run', run, '--rows', n, '--cols', n, '--out', out, '--band', band, '--profile', profile], timeout=24 * 3600)
        wall = time.perf_counter() - t0
        with rasterio.open(out) as ds:
            layout, ovr, shape = ds.tags(ns='IMAGE_STRUCTURE').get('LAYOUT'), ds.overviews(1), (ds.height, ds.width)
        size_mb = (out.stat().st_size + mask_path(out).stat().st_size) / 2**20
        if not keep: out.unlink(); mask_path(out).unlink()
        rows.append(dict(pixels=px, tile=T, tiles=n * n, shape=list(shape), seconds=r['seconds'], wall_seconds=round(wall, 1),
                         tiles_per_s=round(n * n / r['seconds'], 1), peak_rss_mb=r['peak_rss_mb'], layout=layout,
                         overviews=ovr, file_mb=round(size_mb, 1)))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def linear_fit(rows, predict):
    """seconds = a + b * tiles, fitted on relative error (sizes span orders of magnitude, so an unweighted fit would
    serve only the largest), its prediction for the sizes in `predict`, and the slope of log seconds on log tiles."""
    t, s = np.array([[r['tiles'], r['seconds']] for r in rows], float).T
    if len(t) < 2: b, a, k = s[0] / t[0], 0.0, float('nan')
    else: (b, a), k = np.polyfit(t, s, 1, w=1 / s), np.polyfit(np.log(t), np.log(s), 1)[0]
    resid = (s - (a + b * t)) / s
    return dict(intercept_s=round(float(a), 2), ms_per_tile=round(float(b) * 1e3, 3), max_relative_residual=round(float(np.abs(resid).max()), 3),
                exponent=round(float(k), 3), predicted_seconds={str(p): round(float(a + b * (p // rows[0]['tile']) ** 2)) for p in predict})


def main():
    p = argparse.ArgumentParser(prog='bench_mosaic.py', description=__doc__.splitlines()[0])
    p.add_argument('--run', help='training run folder with an exported model (or copy)')
    p.add_argument('--refit', default=None, help="a saved result: fit its runs again instead of growing mosaics")
    p.add_argument('--sizes', default='4096,8192,16384', help='pixels per side, comma-separated')
    p.add_argument('--predict', default='32768', help='sizes to predict from the fit, comma-separated')
    p.add_argument('--band', type=int, default=32, help='tile rows grown together')
    p.add_argument('--work', default=None, help='folder for the mosaics (default: a temporary folder)')
    p.add_argument('--keep', action='store_true', help='keep the mosaics')
    p.add_argument('--out', default=None, help='also write the result JSON here')
    a = p.parse_args()
    predict = [int(s) for s in a.predict.split(',') if s]
    if a.refit:
        try: res = json.loads(Path(a.refit).read_text()); runs = res['runs']
        except (OSError, ValueError, KeyError, TypeError) as e:
            p.error(f'--refit {a.refit}: not a benchmark result ({e.__class__.__name__}); give a JSON written by --out')
        res['fit'] = linear_fit(runs, predict)
        return _report(res, a.out)
    if not a.run: p.error('give --run RUN (a training run folder, or copy), or --refit a saved result')
    work = Path(a.work or tempfile.mkdtemp(prefix='bench_mosaic_'))
    work.mkdir(parents=True, exist_ok=True)
    try:
        rows = bench(a.run, [int(s) for s in a.sizes.split(',')], a.band, work, a.keep)
    finally:
        if not a.work and not a.keep: shutil.rmtree(work, ignore_errors=True)
    _report(dict(command='python ' + ' '.join(sys.argv), band=a.band, runs=rows, fit=linear_fit(rows, predict)), a.out)


def _report(res, out):
    "Print the result as one JSON line, and write it (atomically) to `out` if given."
    if out:
        tmp = Path(str(out) + '.tmp')
        tmp.write_text(json.dumps(res, indent=1) + '\n'); tmp.replace(out)
    print(json.dumps(res))


if __name__ == '__main__':
    main()
