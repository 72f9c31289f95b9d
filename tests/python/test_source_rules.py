"""Rules of the implementation's source that keep its hot paths fast."""
import ast
import os
import sys
import types

import actx


def _impl_modules():
    """(module, its source file) of every loaded actx._impl module."""
    prefix = 'actx._impl.'
    for name, mod in sorted(sys.modules.items()):
        f = getattr(mod, '__file__', None) or ''
        # The backends call the extension's objects (cffi's ffi and lib),
        # whose functions are attributes, not methods, either way.
        if name.startswith(prefix) and f.endswith('.py') and \
                not name.startswith(prefix + '_backend'):
            yield mod, f


def test_no_method_call_on_an_imported_object():
    """CPython (3.11 and later) compiles `name.method(...)` as an attribute
    load and a call, not as a method call, when name is bound by a
    module-level `from ... import` (it assumes a module): for a dict or a
    set that makes a bound method object each call.  So no module calls a
    method of an object (not a module) it imported by name; it imports a
    bound method instead (_thread._state_of for _states.get)."""
    actx.context_id()  # every API module is loaded with the package
    found = []
    checked = 0
    for mod, path in _impl_modules():
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        imported = {}  # name: the object
        for node in tree.body:
            if isinstance(node, ast.ImportFrom):
                for a in node.names:
                    name = a.asname or a.name
                    obj = getattr(mod, name, None)
                    if not isinstance(obj, types.ModuleType):
                        imported[name] = obj
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and \
                    isinstance(node.func, ast.Attribute) and \
                    isinstance(node.func.value, ast.Name) and \
                    node.func.value.id in imported and \
                    hasattr(type(imported[node.func.value.id]),
                            node.func.attr):
                found.append('%s:%d %s.%s()' % (
                    os.path.basename(path), node.lineno,
                    node.func.value.id, node.func.attr))
        checked += 1
    assert checked >= 8  # _context, _timers, _request, _bh, _loop, ...
    assert found == []
