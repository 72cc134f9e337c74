"""Running where the papers ran: buckets (ram:// stands in), the runtime's strategy, TPU input, the Kubeflow TFJob run locally, the image."""
import json, os, re, subprocess, sys, tomllib
from pathlib import Path
import pytest, yaml
from conftest import ROOT, BIN, run, last_json, one_line_error
from test_engine import launch_workers, events

BUCKET_RUNS = r'''
import json, sys
import tensorflow as tf
from tilegan_core.train import train_cli
out = 'ram://bucket/runs/toy'   # ram:// lives in this process: both runs and the checks happen here
runs = [['--steps', '3'],
        ['--steps', '5'],                                # no --resume: refused, nothing overwritten
        None,                                            # a save torn before its marker was written
        ['--steps', '6', '--resume']]
for args in runs:  # at the top level of the script, where the console script's parser reads sys.argv
    if args is None:
        for f in ('ckpt-90.index', 'ckpt-90.data-00000-of-00001'):
            with tf.io.gfile.GFile(f'{out}/checkpoints/{f}', 'w') as w: w.write('torn')
        continue
    sys.argv = ['tilegan-train', 'toy', '--out', out, '--set', 'train.checkpoint_every=2', '--json', *args]
    try: train_cli()
    except SystemExit as e: print(json.dumps({'exit': e.code}), flush=True)
g = tf.io.gfile
print(json.dumps({'files': sorted(g.listdir(out)), 'checkpoints': sorted(g.listdir(f'{out}/checkpoints')),
                  'summary': json.loads(g.GFile(f'{out}/summary.json').read()),
                  'steps': [json.loads(l) for l in g.GFile(f'{out}/steps.jsonl').read().splitlines()],
                  'tb': len(g.glob(f'{out}/tb/events.out.tfevents*'))}))
'''


@pytest.mark.slow   # trains, is killed and resumes
def test_train_on_bucket_and_resume(tmp_path):
    "`tilegan-train toy --out ram://... --steps 3`, then `--resume`: everything lands on the bucket; a torn save is ignored."
    script = tmp_path/'bucket_runs.py'
    script.write_text(BUCKET_RUNS)
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=ROOT, timeout=600,
                       env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'})
    assert r.returncode == 0, r.stderr[-3000:]
    out = [json.loads(l) for l in r.stdout.splitlines() if l.startswith('{')]
    first, refused, resumed, state = out
    assert (first['start_step'], first['final_step'], first['checkpoint_step']) == (0, 3, 3)
    assert refused == {'exit': 2} and 'pass --resume to continue it' in r.stderr
    assert (resumed['start_step'], resumed['final_step'], resumed['run_dir']) == (3, 6, 'ram://bucket/runs/toy')
    assert sorted(resumed['models']) == ['ram://bucket/runs/toy/models/discriminator.keras', 'ram://bucket/runs/toy/models/generator.keras']
    assert state['files'] == ['checkpoints', 'models', 'profile.json', 'steps.jsonl', 'summary.json', 'tb']
    assert state['summary']['weights_sha256'] == resumed['weights_sha256'] and state['tb'] >= 2
    assert [e['step'] for e in state['steps'] if 'event' not in e] == [1, 2, 3, 4, 5, 6]
    assert [e['step'] for e in state['steps'] if e.get('event') == 'checkpoint'] == [2, 3, 4, 6]
    assert 'ckpt-6.index' in state['checkpoints'] and 'checkpoint' in state['checkpoints']


@pytest.mark.slow   # trains
def test_strategy_auto_and_tpu_settings(tmp_path):
    "`--strategy auto` takes the runtime's strategy (here: CPU, default); on a TPU it would be TPUStrategy with 128 per core."
    s = last_json(run('tilegan-train', 'toy', '--strategy', 'auto', '--steps', '2', '--out', tmp_path/'r', '--json'))
    from tilegan_core.device import detect_runtime
    here = detect_runtime()
    assert here['runtime'] == 'cpu' and (s['strategy'], s['replicas'], s['final_step']) == (here['strategy'], 1, 2)
    from tilegan_core.config import load_profile
    tpu = detect_runtime({'TPU_ACCELERATOR_TYPE': 'v3-8'}, tpu=True)
    cfg = load_profile('paper', tpu['overrides'])
    assert (cfg.train.strategy, cfg.gan3d.batch_size) == ('tpu', 128)
    assert load_profile('paper', tpu['overrides'] + ['gan3d.batch_size=96']).gan3d.batch_size == 96  # the user's --set wins


def test_tpu_input_is_a_graph(tmp_path):
    "On a TPU the 3DGAN must read TFRecord shards: its HDF5 pipeline runs a Python generator and is refused."
    h5 = tmp_path/'mc.h5'
    last_json(run('tilegan-calo-mc', '--events', '40', '--out', h5, '--seed', '1', '--json'))
    from tilegan_core.calo.data import to_tfrecords
    from tilegan_core.calo.gan3d import training_batches
    from tilegan_core.distribute import check_tpu_input, python_ops
    from tilegan_core.core import InputError
    shards = to_tfrecords([h5], tmp_path/'shards')
    assert [o for o in python_ops(training_batches(h5, 8)) if 'PyFunc' in o]
    with pytest.raises(InputError, match='TFRecord shards'): check_tpu_input(training_batches(h5, 8))
    ds = training_batches(shards, 8)
    assert check_tpu_input(ds) is ds and python_ops(ds) == []


@pytest.mark.slow
def test_tfjob_runs_locally(tmp_path):
    "The emitted TFJob, run as the operator would (one process per pod, TF_CONFIG on localhost): workers agree, the chief checkpoints."
    from tilegan_core.distribute import check_tfjob, free_ports
    rundir, job = tmp_path/'run', tmp_path/'job.yaml'
    s = last_json(run('tilegan-train', 'toy', '--out', rundir, '--steps', '20', '--set', 'train.checkpoint_every=10',
                      '--emit-tfjob', job, '--workers', '2', '--gpus-per-worker', '0', '--image', 'tilegan:cpu', '--json'))
    assert s['tfjob'] == str(job) and not rundir.exists()  # emitting trains nothing
    m = check_tfjob(yaml.safe_load(job.read_text()))
    w = m['spec']['tfReplicaSpecs']['Worker']
    c = w['template']['spec']['containers'][0]
    assert (m['apiVersion'], m['kind'], w['replicas'], c['image']) == ('kubeflow.org/v1', 'TFJob', 2, 'tilegan:cpu')
    assert c['resources'] == {'requests': {'cpu': '2'}} and c['command'][0] == 'tilegan-train'
    assert c['command'][c['command'].index('--strategy') + 1] == 'multiworker'
    procs = launch_workers([str(BIN/c['command'][0]), *c['command'][1:]], free_ports(w['replicas']))
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (o, e) in zip(procs, outs): assert p.returncode == 0, e[-2000:]
    res = [json.loads(o.strip().splitlines()[-1]) for o, _ in outs]
    assert [(r['worker'], r['chief'], r['replicas'], r['final_step']) for r in res] == [(0, True, 2, 20), (1, False, 2, 20)]
    assert res[0]['weights_sha256'] == res[1]['weights_sha256']  # in sync: the same weights on every worker
    import tensorflow as tf
    assert tf.train.latest_checkpoint(str(rundir/'checkpoints')).endswith('ckpt-20')
    assert [e['step'] for e in events(rundir) if e.get('event') == 'checkpoint'] == [10, 20]
    assert json.loads((rundir/'summary.json').read_text())['worker'] == 0 and not list(rundir.glob('.worker-*'))


def test_emit_tfjob_bad_input(tmp_path):
    r = run('tilegan-train', 'toy', '--out', 'gs://b/r', '--emit-tfjob', tmp_path/'job.yaml', '--workers', '0')
    assert 'workers=0' in one_line_error(r, 'tilegan-train') and not (tmp_path/'job.yaml').exists()


def test_dockerfile_installs_a_tensorflow_extra():
    "The image installs the checkout with an extra that brings TensorFlow, and leaves environments and outputs out."
    extras = tomllib.loads((ROOT/'pyproject.toml').read_text())['project']['optional-dependencies']
    docker = (ROOT/'Dockerfile').read_text()
    default = re.search(r'^ARG EXTRA=(\w+)$', docker, re.M).group(1)
    documented = set(re.findall(r'EXTRA=(\w+)', docker))
    assert default == 'cpu' and documented <= set(extras)
    assert all(any(d.startswith(('tensorflow', 'tilegan[')) for d in extras[e]) for e in documented)
    assert 'pip install ".[${EXTRA}]"' in docker
    ignored = (ROOT/'.dockerignore').read_text().split()
    assert {'.git', '.venv', 'work'} <= set(ignored) and 'tilegan_core' not in ignored
