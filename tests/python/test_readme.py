"""The README's Python examples run as written (both backends)."""
import os
import re

import pytest

from conftest import run_child

README = os.path.join(os.path.dirname(__file__), '..', '..', 'README.md')
SECTIONS = ('### asyncio', '### Contexts in coroutines')
EXPECT = {'### asyncio': 'actx timer', '### Contexts in coroutines': '[1, 2]'}


def example(section):
    with open(README) as f:
        text = f.read()
    body = text.split('\n' + section + '\n', 1)[1]
    return re.search(r'```python\n(.*?)```', body, re.S).group(1)


@pytest.mark.parametrize('section', SECTIONS)
def test_readme_example_runs(backend, section):
    r = run_child(backend, example(section), timeout=60)
    assert r.returncode == 0, r.stderr
    assert EXPECT[section] in r.stdout
    assert not r.stderr, r.stderr
