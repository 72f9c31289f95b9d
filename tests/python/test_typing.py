"""Static names and introspection (issue 10): the stubs cover the public
API, py.typed is shipped, help(actx) shows no internal module paths."""
import ast
import os
import pydoc
import subprocess
import sys
import textwrap

import pytest

import actx

PKG = os.path.dirname(actx.__file__)
# Declared in the stubs, added to the package by other work (the version
# attribute, the poll cap); present once that work is merged.
ELSEWHERE = {'__version__', 'set_poll_max_ns'}


def stub():
    with open(os.path.join(PKG, '__init__.pyi')) as f:
        tree = ast.parse(f.read())
    names, classes = set(), {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign):
            names.add(node.target.id)
        if isinstance(node, ast.ClassDef):
            classes[node.name] = {n.name for n in node.body
                                  if isinstance(n, (ast.FunctionDef,
                                                    ast.AsyncFunctionDef))}
    return {n for n in names if not n.startswith('_') or
            n.startswith('__')}, classes


def test_py_typed_shipped():
    assert os.path.isfile(os.path.join(PKG, 'py.typed'))


def test_stub_covers_all(ax):
    names, classes = stub()
    missing = set(actx.__all__) - names
    assert not missing, 'not in __init__.pyi: %s' % sorted(missing)
    extra = {n for n in names - ELSEWHERE - {'__all__'}
             if not hasattr(ax, n) and not hasattr(actx, n)}
    assert not extra, 'in __init__.pyi, not in actx: %s' % sorted(extra)
    for cls, methods in classes.items():
        if cls.startswith('_'):
            continue
        obj = getattr(ax, cls)
        for m in methods:
            assert hasattr(obj, m), '%s.%s' % (cls, m)


@pytest.mark.parametrize('name', ['Request', 'Timer', 'AsyncioBridge',
                                  'async_context', 'BottomHalf',
                                  'ContextHandle', 'DeadlockError'])
def test_public_classes_are_actx_names(ax, name):
    assert getattr(ax, name).__module__ == 'actx'


def test_help_shows_no_internal_paths():
    text = pydoc.render_doc(actx, renderer=pydoc.plaintext)
    # The package's modules are all internal: none is listed.
    assert 'SUBMODULES' not in text
    listed = text.split('PACKAGE CONTENTS', 1)[1].split('CLASSES', 1)[0]
    assert listed.strip() == '', listed
    for line in text.split('CLASSES', 1)[0].splitlines()[2:]:
        assert not line.strip().startswith('_'), line
    body = text.split('CLASSES', 1)[1]
    for internal in ('actx._impl', 'actx._core', 'actx._common',
                     'actx._asyncio', 'actx._backend', 'BridgeBase'):
        assert internal not in body, internal
    for name in actx.__all__:
        assert name in text, name
    assert 'asyncio task' in text  # the rule for contexts in coroutines


def test_other_backend_loads_after_import():
    # use_backend() before first use loads the other backend (and only
    # it serves the API from then on), leaving no submodule attribute.
    code = textwrap.dedent('''
        import actx, pydoc
        other = {'cffi': 'swig', 'swig': 'cffi'}[actx.BACKEND]
        actx.use_backend(other)
        assert actx.BACKEND == other
        ax = actx
        with ax.async_context():
            assert ax.context_id() == 1
        import actx._impl._common  # the import system still finds them
        text = pydoc.render_doc(actx, renderer=pydoc.plaintext)
        assert 'SUBMODULES' not in text, text
        listed = text.split('PACKAGE CONTENTS', 1)[1].split('CLASSES')[0]
        assert listed.strip() == '', listed
        print('ok', other)
        ''')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith('ok')


def test_plain_package_no_import_hook():
    """help(actx) lists nothing private by the layout alone: actx.__path__
    is the package's directory, no path hook or finder of actx's is
    installed, and the implementation (actx._impl, a directory without
    __init__.py) is found by the ordinary import system."""
    code = textwrap.dedent('''
        import os, pkgutil, sys
        hooks, finders = list(sys.path_hooks), list(sys.meta_path)
        import actx
        assert sys.path_hooks == hooks, sys.path_hooks
        assert sys.meta_path == finders, sys.meta_path
        assert actx.__path__ == [os.path.dirname(actx.__file__)]
        assert list(pkgutil.iter_modules(actx.__path__)) == []
        import actx._impl._context as c
        assert c.__file__.startswith(os.path.join(actx.__path__[0],
                                                  '_impl') + os.sep)
        print('ok')
        ''')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == 'ok'
