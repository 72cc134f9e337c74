"""The training engine end to end: `tilegan-train` as a subprocess, real multi-device and multi-process runs, SIGKILL and resume."""
import json, os, signal, subprocess, sys, time
from pathlib import Path
import numpy as np
import pytest, yaml
from conftest import run, one_line_error

BIN = Path(sys.executable).parent
TRAIN = str(BIN/'tilegan-train')
ENV = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'}
ENV.pop('TF_CONFIG', None)


def train(*args, env=None, timeout=300):
    "Run tilegan-train; returns (returncode, last JSON line or None, stderr)."
    r = subprocess.run([TRAIN, *args], capture_output=True, text=True, env=env or ENV, timeout=timeout)
    lines = r.stdout.strip().splitlines()
    return r.returncode, (json.loads(lines[-1]) if r.returncode == 0 and lines else None), r.stderr


def events(run):
    "The lines of a run's steps.jsonl."
    p = Path(run)/'steps.jsonl'
    return [json.loads(l) for l in p.read_text().splitlines() if l.strip()] if p.exists() else []


def wait_for_step(run, step, procs, timeout=180):
    "Poll steps.jsonl until the chief logged `step`."
    t0 = time.time()
    while time.time() - t0 < timeout:
        if any(e.get('step', 0) >= step and 'event' not in e for e in events(run)): return
        if any(p.poll() is not None for p in procs): raise AssertionError('a training process ended before it could be killed')
        time.sleep(0.2)
    raise AssertionError(f'step {step} not reached')


def test_bad_input_one_line(tmp_path):
    rc, _, err = train('toy', '--strategy', 'tpu', '--steps', '1', '--out', str(tmp_path/'tpu'))
    last = err.strip().splitlines()[-1]  # (TensorFlow's C++ logging may print before it)
    assert rc == 2 and last.startswith('tilegan-train: error: --strategy tpu: no TPU is reachable')
    rc, _, err = train('toy', '--set', 'train.lr_scaling=cubic', '--out', str(tmp_path/'x'))
    assert rc == 2 and 'train.lr_scaling' in err
    r = run('tilegan-train', 'toy', '--data', tmp_path/'missing.tfrecord', '--steps', '1', '--out', tmp_path/'y')
    assert r.stderr.strip() == one_line_error(r, 'tilegan-train') and 'missing.tfrecord' in r.stderr   # refused before TensorFlow loads


@pytest.mark.slow
def test_loops_agree_and_run_folder(tmp_path):
    "Built-in and custom loops give the same numbers on the same seed and data (rel. 1e-4)."
    res = {}
    for loop in ('builtin', 'custom'):
        rc, s, err = train('toy', '--loop', loop, '--steps', '25', '--set', 'train.checkpoint_every=10',
                           '--out', str(tmp_path/loop), '--json')
        assert rc == 0, err
        res[loop] = s
        assert (s['start_step'], s['final_step'], s['checkpoint_step'], s['status']) == (0, 25, 25, 'done')
        assert s['samples_per_s'] > 0
        run = tmp_path/loop
        assert json.loads((run/'summary.json').read_text())['weights_sha256'] == s['weights_sha256']
        assert json.loads((run/'profile.json').read_text())['train']['loop'] == loop
        assert any(p.name.startswith('events.out.tfevents') for p in (run/'tb').iterdir())
        assert [e['step'] for e in events(run) if e.get('event') == 'checkpoint'] == [10, 20, 25]
        assert (run/'models'/'generator.keras').exists()
    for k in ('d_loss', 'g_loss'):
        assert res['builtin'][k] == pytest.approx(res['custom'][k], rel=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize('loop', ['custom', 'builtin'])
def test_sigkill_then_resume(tmp_path, loop):
    "SIGKILL mid-run; --resume continues from the last checkpoint, losing < 1 interval and repeating nothing."
    run, every = tmp_path/'run', 10
    p = subprocess.Popen([TRAIN, 'toy', '--loop', loop, '--steps', '100000', '--set', f'train.checkpoint_every={every}',
                          '--out', str(run)], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try: wait_for_step(run, 35, [p])
    finally: p.send_signal(signal.SIGKILL); p.wait()
    ev = events(run)
    killed_at = max(e['step'] for e in ev if 'event' not in e)
    last_ckpt = max(e['step'] for e in ev if e.get('event') == 'checkpoint')
    assert killed_at - last_ckpt < every + 1 and last_ckpt % every == 0
    n_before = len(ev)
    rc, s, err = train('toy', '--loop', loop, '--steps', str(last_ckpt + 25), '--set', f'train.checkpoint_every={every}',
                       '--out', str(run), '--resume', '--json')
    assert rc == 0, err
    # the kill may land between a checkpoint's save and its log line: then the run resumes from that newer checkpoint
    start = s['start_step']
    assert start in (last_ckpt, last_ckpt + every) and start <= killed_at and s['final_step'] == last_ckpt + 25
    after = [e['step'] for e in events(run)[n_before:] if 'event' not in e]
    assert after == list(range(start + 1, last_ckpt + 26))  # continues right after the checkpoint, no step twice
    rc, _, err = train('toy', '--loop', loop, '--steps', '5', '--out', str(run))  # no silent overwrite
    assert rc == 2 and '--resume' in err


@pytest.mark.slow
def test_nonfinite_stops_and_keeps_checkpoint(tmp_path):
    "Inf in the data: the run stops at the step it appears, names it, and keeps the last good checkpoint."
    from tilegan_core.loops import toy_data, write_toy_records
    x, y = toy_data(64, seed=1)
    good = write_toy_records(tmp_path/'good.tfrecord', x, y)
    bad = write_toy_records(tmp_path/'bad.tfrecord', np.full_like(x, np.inf), y)
    run = tmp_path/'run'
    rc, s, err = train('toy', '--data', str(good), '--steps', '10', '--set', 'train.checkpoint_every=5', '--out', str(run), '--json')
    assert rc == 0 and s['checkpoint_step'] == 10, err
    rc, _, err = train('toy', '--data', str(bad), '--steps', '20', '--set', 'train.checkpoint_every=5', '--out', str(run), '--resume')
    assert rc == 2 and 'step 11:' in err and 'last good checkpoint (step 10)' in err, err[-400:]
    summ = json.loads((run/'summary.json').read_text())
    assert summ['status'] == 'nonfinite' and 'step 11' in summ['error']
    assert [e['step'] for e in events(run) if e.get('event') == 'checkpoint'] == [5, 10]
    rc, s, err = train('toy', '--data', str(good), '--steps', '12', '--out', str(run), '--resume', '--json')
    assert rc == 0 and s['start_step'] == 10, err  # the kept checkpoint is good


def launch_workers(cmd, ports):
    "Start `cmd` once per port: the workers of one local job, each with the TF_CONFIG the Kubeflow operator would set."
    from tilegan_core.distribute import local_tf_config
    return [subprocess.Popen(cmd, env={**ENV, 'TF_CONFIG': local_tf_config(ports, i)}, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for i in range(len(ports))]


def _workers(run, steps, ports, resume=False, every=10):
    cmd = [TRAIN, 'toy', '--strategy', 'multiworker', '--steps', str(steps), '--set', f'train.checkpoint_every={every}',
           '--out', str(run), '--json'] + (['--resume'] if resume else [])
    return launch_workers(cmd, ports)


@pytest.mark.slow
def test_multiworker_kill_and_resume(tmp_path):
    "Two local workers train together; kill one, restart the job with --resume: it continues and ends with identical weights."
    from tilegan_core.distribute import free_ports
    run = tmp_path/'run'
    procs = _workers(run, 100000, free_ports(2))
    try: wait_for_step(run, 25, procs, timeout=240)
    finally:
        procs[1].send_signal(signal.SIGKILL); procs[1].wait()
        procs[0].send_signal(signal.SIGKILL); procs[0].communicate()  # the job is restarted as a whole
    last_ckpt = max(e['step'] for e in events(run) if e.get('event') == 'checkpoint')
    assert last_ckpt >= 20
    procs = _workers(run, last_ckpt + 15, free_ports(2), resume=True)
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (o, e) in zip(procs, outs): assert p.returncode == 0, e[-2000:]
    s = [json.loads(o.strip().splitlines()[-1]) for o, _ in outs]
    assert [x['worker'] for x in s] == [0, 1] and [x['chief'] for x in s] == [True, False]
    assert [(x['start_step'], x['final_step'], x['replicas']) for x in s] == [(last_ckpt, last_ckpt + 15, 2)] * 2
    assert s[0]['weights_sha256'] == s[1]['weights_sha256']
    assert json.loads((run/'summary.json').read_text())['worker'] == 0  # only the chief wrote it
    assert not list(run.glob('.worker-*'))  # the other worker's scratch checkpoints are gone


def test_tfjob_manifest(tmp_path):
    "The Kubeflow TFJob rendered from the same profile has the structure the operator needs."
    from tilegan_core.distribute import train_command, render_tfjob, write_tfjob, check_tfjob
    from tilegan_core.core import InputError
    cmd = train_command('calo', 'paper', '/runs/data/calo', '/runs/calo', ['train.lr_scaling=sqrt'])
    m = yaml.safe_load(write_tfjob(render_tfjob(cmd, workers=4, gpus_per_worker=8, image='reg/tilegan:1'), tmp_path/'job.yaml').read_text())
    assert (m['apiVersion'], m['kind']) == ('kubeflow.org/v1', 'TFJob')
    w = m['spec']['tfReplicaSpecs']['Worker']
    c = w['template']['spec']['containers'][0]
    assert (w['replicas'], w['restartPolicy'], c['name'], c['image']) == (4, 'OnFailure', 'tensorflow', 'reg/tilegan:1')
    assert c['resources']['limits']['nvidia.com/gpu'] == 8
    assert c['command'][:2] == ['tilegan-train', 'calo'] and '--resume' in c['command']
    assert c['command'][c['command'].index('--strategy') + 1] == 'multiworker'
    assert c['volumeMounts'][0]['mountPath'] == '/runs'
    del m['spec']['tfReplicaSpecs']['Worker']['template']['spec']['containers'][0]['image']
    with pytest.raises(InputError): check_tfjob(m)
