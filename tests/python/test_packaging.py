"""Backend selection and fallback, and actx.__version__.

A missing backend is simulated in a fresh interpreter by an import hook
that refuses one module: _cffi_backend (cffi's runtime, which the cffi
extension imports) or actx._impl._actx_swig (the SWIG extension).
"""
import os
import re
import subprocess
import sys
import textwrap

import pytest

import actx

# What each backend needs that the other does not.
NEEDS = {'cffi': '_cffi_backend', 'swig': 'actx._impl._actx_swig'}
OTHER = {'cffi': 'swig', 'swig': 'cffi'}

BLOCK = '''
import sys
import warnings

BLOCKED = %r


class Block:
    def find_spec(self, name, path=None, target=None):
        if name in BLOCKED:
            raise ModuleNotFoundError('No module named %%r' %% name,
                                      name=name)
        return None


sys.meta_path.insert(0, Block())
warnings.simplefilter('always')
'''


def run_blocked(blocked, code, backend=None):
    """Run code in a fresh interpreter where the modules in blocked cannot
    be imported; ACTX_BACKEND=backend (unset if None)."""
    env = dict(os.environ)
    env.pop('ACTX_BACKEND', None)
    if backend is not None:
        env['ACTX_BACKEND'] = backend
    src = BLOCK % (tuple(blocked),) + textwrap.dedent(code)
    return subprocess.run([sys.executable, '-c', src], env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize('missing', ['cffi', 'swig'])
def test_default_falls_back_to_the_other_backend(missing):
    """Without ACTX_BACKEND a backend that cannot load is replaced by the
    other: one RuntimeWarning, naming the missing module, only when the
    default (cffi) was the one missing."""
    r = run_blocked([NEEDS[missing]], '''
        with warnings.catch_warnings(record=True) as w:
            import actx
        print(actx.BACKEND)
        for x in w:
            print('WARNING', x.category.__name__, x.message)
        with actx.async_context() as ctx:
            assert actx.context_id() == ctx.id == 1
            assert actx.submit(pow, 2, 5).result() == 32
    ''')
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == OTHER[missing]
    warns = [ln for ln in lines if ln.startswith('WARNING')]
    if missing == 'cffi':
        assert len(warns) == 1, warns
        assert 'RuntimeWarning' in warns[0]
        assert "'_cffi_backend'" in warns[0] and 'using swig' in warns[0]
    else:
        assert warns == []   # the default loaded: swig was never needed


@pytest.mark.parametrize('missing', ['cffi', 'swig'])
def test_actx_backend_naming_an_unavailable_backend(missing):
    r = run_blocked([NEEDS[missing]], '''
        try:
            import actx
        except ImportError as e:
            print('ImportError:', e)
        else:
            print('imported', actx.BACKEND)
    ''', backend=missing)
    assert r.returncode == 0, r.stderr
    out = r.stdout.strip()
    assert out.startswith('ImportError: actx: the %s backend cannot be '
                          'loaded' % missing), out
    assert repr(NEEDS[missing]) in out, out


@pytest.mark.parametrize('missing', ['cffi', 'swig'])
def test_use_backend_of_an_unavailable_backend(missing):
    """The other backend is selected at import; switching to the missing
    one is an ImportError and leaves the selection as it was."""
    r = run_blocked([NEEDS[missing]], '''
        import actx
        try:
            actx.use_backend(%r)
        except ImportError as e:
            print('ImportError:', e)
        print(actx.BACKEND)
        assert actx.push() == 1 and actx.context_id() == 1
        actx.pop()
    ''' % missing, backend=OTHER[missing])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith('ImportError: actx: the %s backend' % missing)
    assert repr(NEEDS[missing]) in lines[0]
    assert lines[1] == OTHER[missing]


def test_no_backend_at_all():
    r = run_blocked(NEEDS.values(), '''
        try:
            import actx
        except ImportError as e:
            print('ImportError:', e)
    ''')
    assert r.returncode == 0, r.stderr
    out = r.stdout.strip()
    assert out.startswith('ImportError: actx: no backend can be loaded')
    for name in NEEDS.values():
        assert repr(name) in out, out


@pytest.mark.parametrize('name', ['bogus', 'CFFI', 'ctypes'])
def test_unknown_backend_is_a_value_error(name):
    r = run_blocked([], '''
        try:
            import actx
        except ValueError as e:
            print('ValueError:', e)
    ''', backend=name)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ("ValueError: actx backend must be one of "
                                "cffi, swig, not %r" % name)
    with pytest.raises(ValueError):
        actx.use_backend(name)


def test_version_is_the_librarys(ax):
    """actx.__version__ is actx_version_string() of the loaded library,
    which is the header's ACTX_VERSION_MAJOR.MINOR.PATCH."""
    # Both extensions, in a child: this process keeps one backend.
    r = subprocess.run([sys.executable, '-c', textwrap.dedent('''
        import actx
        from actx._impl import actx_swig
        from actx._impl._actx_cffi import ffi, lib
        c = ffi.string(lib.actx_version_string()).decode()
        assert actx.__version__ == c == actx_swig.actx_version_string()
        n = lib.actx_version()
        assert c == '%d.%d.%d' % (n >> 16, (n >> 8) & 0xff, n & 0xff)
        ''')], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    header = os.path.join(os.path.dirname(__file__), '..', '..', 'runtime',
                          'include', 'actx.h')
    with open(header) as f:
        text = f.read()
    parts = [re.search(r'#define ACTX_VERSION_%s (\d+)' % p, text).group(1)
             for p in ('MAJOR', 'MINOR', 'PATCH')]
    assert actx.__version__ == '.'.join(parts)
