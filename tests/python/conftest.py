"""Every test runs once per backend: the `ax` fixture is the actx API
module of that backend (actx._api(name)); both bind the same libactx.

Tests that need a fresh interpreter (exit, signals) run a child python
with ACTX_BACKEND set; it inherits PYTHONPATH (and LD_PRELOAD under ASan)
from the environment `scons test:py` gives pytest.
"""
import errno
import os
import subprocess
import sys
import textwrap

import pytest

import actx

BACKENDS = ('cffi', 'swig')
ASAN = 'libasan' in os.environ.get('LD_PRELOAD', '')


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def ax(backend):
    api = actx._api(backend)
    assert api.context_id() == 0, 'a previous test left a context pushed'
    yield api
    depth = api.context_id()
    while api.context_id() > 0:
        api.pop()
    assert depth == 0, 'test left %d context(s) pushed' % depth


@pytest.fixture
def pool(ax):
    """The API of a backend, for tests that use the worker pool."""
    return ax


def run_child(backend, code, timeout=30, **kw):
    """Run code in a fresh interpreter with the given backend."""
    env = dict(os.environ, ACTX_BACKEND=backend)
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)],
                          env=env, capture_output=True, text=True,
                          timeout=timeout, **kw)
