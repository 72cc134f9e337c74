"""The tile-completion GAN end to end: real GeoTIFF -> tilegan-sat-tiles -> tilegan-train sat (both loops, resume
mid-stage) -> exported model -> completions and metrics against the baselines."""
import json
import numpy as np
import pytest
from conftest import run, last_json, one_line_error

# 8-px tiles: WAE stages 4, 8 (steps 0-5), GAN stages 4 (steps 6-9) and 8 (steps 10-17)
TINY = ['sat.tile_size=8', 'wae.latent_dim=8', 'wae.filters=4', 'wae.batch_size=8', 'wae.kimg=0.032',
        'cprogan.noise_dim=8', 'cprogan.fmap_base=64', 'cprogan.fmap_max=8', 'cprogan.batch_size=4',
        'cprogan.kimg_stable=0.016', 'cprogan.kimg_fade=0.016', 'train.checkpoint_every=3']


def _sets(extra=()):
    return [a for o in [*TINY, *extra] for a in ('--set', o)]


@pytest.fixture(scope='module')
def tiles(tmp_path_factory):
    "A procedural SAR scene written as a UNOSAT GeoTIFF with its mask, cut by tilegan-sat-tiles."
    from tilegan_core.sat.scenes import sar_scene, write_sar_scene
    d = tmp_path_factory.mktemp('sat')
    img, msk = write_sar_scene(sar_scene(128, 4, seed=3), d/'scene.tif', d/'scene_water.tif', 'unosat')
    s = last_json(run('tilegan-sat-tiles', img, '--mask', msk, '--tile-size', 8, '--out', d/'tiles', '--block', 2, '--json'))
    assert s['count'] > 0 and s['counts']['train'] >= 8 and s['counts']['test'] > 0, s
    return d/'tiles'


@pytest.mark.slow
def test_custom_loop_resume_mid_stage_then_complete(tiles, tmp_path):
    "Custom loop to step 9 (mid GAN stage 0), resumed to step 12 (into the 8-px fade-in); the exported model completes real samples."
    out = tmp_path/'custom'
    a = last_json(run('tilegan-train', 'sat', '--data', tiles, '--out', out, '--loop', 'custom', '--steps', 9, *_sets(), '--json'))
    b = last_json(run('tilegan-train', 'sat', '--data', tiles, '--out', out, '--loop', 'custom', '--steps', 12, '--resume', *_sets(), '--json'))
    assert (a['status'], a['final_step'], a['checkpoint_step']) == ('done', 9, 9)
    assert a['phase'] == 1.0 and a['stage'] == 0.0            # step 9: GAN phase, first stage
    assert (b['start_step'], b['final_step']) == (9, 12)
    assert b['stage'] == 1.0 and 0 < b['alpha'] < 1            # step 12: fading in 8 px
    steps = [json.loads(l) for l in (out/'steps.jsonl').read_text().splitlines()]
    done = [r['step'] for r in steps if 'event' not in r]
    assert done == list(range(1, 13)), done                   # nothing repeated, nothing lost
    assert all(np.isfinite(r['d_loss']) for r in steps if 'event' not in r)
    gan = [r for r in steps if r.get('phase') == 1.0]
    assert gan and all(r['g_spectral'] > 0 and r['g_recon'] > 0 for r in gan)   # the generator's spectral and coarse terms are on and logged
    assert (out/'models'/'cprogan.json').exists() and (out/'models'/'generator.weights.h5').exists()
    check_completions(out/'models', tiles)


def check_completions(models, tiles):
    "The exported networks complete held-out real samples, seeded, and score against the baselines."
    from tilegan_core.sat.cprogan import load_model, heldout_samples, evaluate_completions, complete
    from tilegan_core.sat.wae import quadrants
    from tilegan_core.sat.metrics import METRICS, seam_score
    net = load_model(models)
    images, masks = heldout_samples(tiles, 'test', limit=16)
    assert images.shape[1:] == (16, 16, 1) and masks.shape[1:] == (16, 16, 1)
    tile, mask = complete(net, quadrants(images)[:3], seed=0)
    assert tile.shape == (len(images), 8, 8, 1) and mask.min() >= 0 and mask.max() <= 1
    np.testing.assert_array_equal(tile, complete(net, quadrants(images)[:3], seed=0)[0])   # seeded
    scores, _ = evaluate_completions(net, images, masks, seed=0)
    assert set(scores) == {'cprogan', 'copy', 'inpaint', 'real'}
    for m in scores.values(): assert set(m) == set(METRICS) and all(np.isfinite(v) for v in m.values())
    assert scores['real']['spectral_distance'] == 0 and scores['real']['mask_iou'] == 1
    # real SAR samples from the GeoTIFF: the truth scores about 1 on the seam, inpainting far less
    assert 0.6 < scores['real']['seam_score'] < 1.6, scores['real']
    assert scores['inpaint']['seam_score'] < scores['real']['seam_score']
    assert seam_score(images, images) == scores['real']['seam_score']


@pytest.mark.slow
def test_builtin_loop(tiles, tmp_path):
    s = last_json(run('tilegan-train', 'sat', '--data', tiles, '--out', tmp_path/'b', '--loop', 'builtin', '--steps', 8, *_sets(), '--json'))
    assert (s['status'], s['loop'], s['final_step']) == ('done', 'builtin', 8)
    assert s['phase'] == 1.0 and np.isfinite(s['d_loss']) and s['d_loss'] != 0
    assert (tmp_path/'b'/'models'/'cprogan.json').exists()


def test_bad_inputs(tiles, tmp_path):
    e = one_line_error(run('tilegan-train', 'sat', '--data', tmp_path/'nope', '--out', tmp_path/'r', *_sets()), 'tilegan-train')
    assert 'metadata.json' in e
    e = one_line_error(run('tilegan-train', 'sat', '--data', tiles, '--out', tmp_path/'r', *_sets(['sat.tile_size=16'])), 'tilegan-train')
    assert 'sat.tile_size=16' in e and 'tiles of 8 px' in e
    e = one_line_error(run('tilegan-train', 'sat', '--data', tiles, '--out', tmp_path/'r', *_sets(['wae.batch_size=64'])), 'tilegan-train')
    assert 'wae.batch_size=64' in e
