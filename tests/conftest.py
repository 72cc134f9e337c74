"""Shared helpers: run installed console scripts as a user would, and read their output."""
import json, os, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run(cmd, *args, cwd=None, env=None, timeout=900):
    "Run console script `cmd` of this environment with `args`; return the CompletedProcess."
    # the command chooses TensorFlow's log level itself, as it does for a user who set none
    e = {**{k: v for k, v in os.environ.items() if k not in ('TF_CPP_MIN_LOG_LEVEL', 'TILEGAN_TF_LOG')}, **(env or {})}
    return subprocess.run([str(BIN/cmd), *map(str, args)], capture_output=True, text=True,
                          cwd=cwd or ROOT, env=e, timeout=timeout)


def last_json(r):
    "The JSON object printed on the last line of a command's stdout."
    assert r.returncode == 0, f'exit {r.returncode}\nstdout:\n{r.stdout[-2000:]}\nstderr:\n{r.stderr[-3000:]}'
    return json.loads(r.stdout.strip().splitlines()[-1])


def one_line_error(r, prog):
    "Assert a failed command printed exactly one error line naming itself; return that line."
    assert r.returncode == 2, f'exit {r.returncode}\nstdout:\n{r.stdout[-1000:]}\nstderr:\n{r.stderr[-2000:]}'
    lines = [l for l in r.stderr.splitlines() if l.startswith(f'{prog}: error: ')]
    assert len(lines) == 1, r.stderr
    assert 'Traceback' not in r.stderr, r.stderr
    return lines[0]


@pytest.fixture
def root(): return ROOT


def pytest_collection_modifyitems(config, items):
    "The notebooks that train go first: the longest tests start early, so the workers finish together."
    heavy = lambda item: item.get_closest_marker('slow') is not None and item.nodeid.startswith('tests/test_notebooks.py')
    items.sort(key=lambda item: not heavy(item))   # stable: every other module keeps its order and stays contiguous
