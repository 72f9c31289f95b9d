"""A process loads one backend (ACTX_BACKEND; `scons test:py` runs the
suite once per backend): the `ax` fixture is the actx package over it.

Tests that need a fresh interpreter (exit, signals) run a child python
with ACTX_BACKEND set; it inherits PYTHONPATH (and LD_PRELOAD under ASan)
from the environment `scons test:py` gives pytest.
"""
import errno
import importlib
import os
import subprocess
import sys
import textwrap

import pytest

import actx


def _loaded_libactx():
    """The files mapped in this process whose name is libactx.so*."""
    with open('/proc/self/maps') as f:
        return {line.split(None, 5)[5].strip() for line in f
                if len(line.split(None, 5)) == 6 and
                os.path.basename(line.split(None, 5)[5]).startswith(
                    'libactx.so')}


def _check_installed():
    where = os.environ.get('ACTX_TEST_INSTALLED')
    if not where:
        return
    # Both extensions (and so their libactx), not only the backend's; the
    # package keeps no attribute for its implementation (help(actx) lists
    # none).
    for ext in ('_actx_cffi', '_actx_swig'):
        importlib.import_module('actx._impl.' + ext)
    vars(actx).pop('_impl', None)
    where = os.path.realpath(where)
    got = os.path.realpath(actx.__file__)
    if not got.startswith(where + os.sep):
        raise RuntimeError('ACTX_TEST_INSTALLED=%s but actx came from %s'
                           % (where, got))
    lib = os.environ.get('ACTX_TEST_LIBACTX')
    if lib:
        want = {os.path.realpath(lib)}
        have = {os.path.realpath(p) for p in _loaded_libactx()}
        if have != want:
            raise RuntimeError('ACTX_TEST_LIBACTX=%s but libactx loaded: %s'
                               % (lib, ', '.join(sorted(have))))


_check_installed()

BACKENDS = (actx.BACKEND,)
ASAN = 'libasan' in os.environ.get('LD_PRELOAD', '')


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def ax(backend):
    api = actx
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
