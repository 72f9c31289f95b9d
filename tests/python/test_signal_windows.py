"""A signal's exception (Ctrl-C: a Python signal handler that raises) can
land at any bytecode of async_context's entry and exit, also between the
C push or pop and Python's record of it.  Wherever it lands, the two
stacks must stay in step: nothing stays pushed that no exit pops, and a
popped context is not taken for the current one.  A trace function
raises KeyboardInterrupt at each line of __enter__ and __exit__ in turn,
as a signal handler would."""
import inspect
import sys

import pytest

import actx
from actx._impl import _context


def _lines(fn):
    """The lines of fn from the first one inside its outermost try: a
    signal can also land before that, at the function's entry, where no
    Python code can catch it (only a method written in C could close that
    window)."""
    src, first = inspect.getsourcelines(fn)
    k = next(k for k, line in enumerate(src) if line.strip() == 'try:')
    return range(first + k + 1, first + len(src))


def _raise_at(code, lineno):
    fired = []

    def local(frame, event, arg):
        if event == 'line' and frame.f_lineno == lineno and not fired:
            fired.append(lineno)
            raise KeyboardInterrupt('at line %d' % lineno)
        return local

    def tracer(frame, event, arg):
        if frame.f_code is code and not fired:
            return local
        return None
    return tracer, fired


def _check_in_step(ax):
    assert ax.context_id() == 0
    with ax.async_context() as c:
        assert c.id == 1
        assert c.deadline is None
        with ax.async_context() as d:
            assert d.id == 2
        assert ax.submit(int, '3').result() == 3
    assert ax.context_id() == 0
    got = []
    ax.current_context().call_soon(got.append, 1)
    ax.poll()
    assert got == [1]


@pytest.mark.parametrize('where', ['__enter__', '__exit__'])
@pytest.mark.parametrize('deadline', [None, 10.0])
def test_ctrl_c_anywhere_in_entry_or_exit_keeps_stacks_in_step(
        pool, where, deadline):
    ax = pool
    fn = getattr(_context.async_context, where)
    hit = 0
    for lineno in _lines(fn):
        fired_timer = []
        tracer, fired = _raise_at(fn.__code__, lineno)
        sys.settrace(tracer)
        try:
            with ax.async_context(timeout=deadline):
                ax.call_later(0.001, fired_timer.append, 1)
        except KeyboardInterrupt:
            pass
        finally:
            sys.settrace(None)
        if not fired:
            continue  # a line that does not run in this scenario
        hit += 1
        _check_in_step(ax)
        # A timer made in the interrupted block still fires (re-homed).
        while len(fired_timer) == 0 and ax.poll(True, timeout=2):
            pass
    assert hit >= 5


def test_ctrl_c_in_entry_of_a_nested_block(ax):
    """Ctrl-C right after the inner block's C push: the outer exit pops
    the outer context, not the inner one."""
    fn = _context.async_context.__enter__
    for lineno in _lines(fn):
        tracer, fired = _raise_at(fn.__code__, lineno)
        with pytest.raises(KeyboardInterrupt):
            with ax.async_context():
                sys.settrace(tracer)
                try:
                    with ax.async_context():
                        pass
                finally:
                    sys.settrace(None)
                if not fired:
                    raise KeyboardInterrupt  # nothing to check at this line
        _check_in_step(ax)


@pytest.mark.parametrize('where', ['push', 'pop'])
def test_ctrl_c_anywhere_in_push_or_pop_keeps_stacks_in_step(ax, where):
    """push() and pop() that raised did their C call or not, but the two
    stacks agree either way (a deadline pushed later is not inherited
    from a context C no longer has)."""
    fn = getattr(_context, where)
    hit = 0
    for lineno in _lines(fn):
        tracer, fired = _raise_at(fn.__code__, lineno)
        with ax.async_context(timeout=100):
            if where == 'pop':
                ax.push()
            sys.settrace(tracer)
            try:
                fn()
            except KeyboardInterrupt:
                pass
            finally:
                sys.settrace(None)
            while ax.context_id() > 1:
                ax.pop()
        if fired:
            hit += 1
        _check_in_step(ax)
    assert hit >= 3
