"""Build and install the actx Python package with pip:

    /usr/bin/python3 -m venv --system-site-packages V
    V/bin/pip install --no-build-isolation .

The wheel carries its own runtime: SCons (the project's one build
description) compiles libactx.so.1 and both extensions in release mode into
build/release/wheel/actx (see bindings/SConscript), the extensions with
RPATH $ORIGIN, libactx.so.1 with liburing linked in (the wheel needs no
liburing.so.2), all stripped (no build paths), and build_ext copies that
tree into the wheel.  SCons runs
under the interpreter pip runs this file with, so the extensions are built
for that Python.  The version is the one in runtime/include/actx.h.

Everything the build writes goes under build/ (build/release for SCons,
build/setuptools for setuptools), never into the sources, so a later
`scons` in the tree is unaffected.
"""
import os
import re
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.egg_info import egg_info

TOP = os.path.dirname(os.path.abspath(__file__))
STAGE = os.path.join('build', 'release', 'wheel', 'actx')
# Files of the staged tree that the build makes (build_py copies the rest,
# the package's own sources, from python/actx), all in actx/_impl (the
# implementation: python/actx/__init__.py says why it is a directory
# without __init__.py).
IMPL = '_impl'
MADE = ('libactx.so.1', 'actx_swig.py')


def version():
    with open(os.path.join(TOP, 'runtime', 'include', 'actx.h')) as f:
        text = f.read()
    parts = [re.search(r'#define ACTX_VERSION_%s (\d+)' % p, text).group(1)
             for p in ('MAJOR', 'MINOR', 'PATCH')]
    return '.'.join(parts)


def scons_command():
    """SCons under this interpreter when it can import SCons (Debian's
    python3-scons can), otherwise the scons program on PATH."""
    probe = subprocess.run([sys.executable, '-c', 'import SCons.Script'],
                           capture_output=True)
    if probe.returncode == 0:
        return [sys.executable, '-c',
                'import sys, SCons.Script.Main as m; sys.exit(m.main())']
    scons = shutil.which('scons')
    if scons is None:
        raise RuntimeError('actx: building needs SCons (Debian: apt-get '
                           'install scons)')
    return [scons]


class BuildWithSCons(build_ext):
    """Build the staged package tree with SCons and copy what it made."""

    def run(self):
        if self.inplace:
            raise RuntimeError('actx: in-place builds are not supported; '
                               'use scons (PYTHONPATH=build/<mode>/python)')
        jobs = str(min(os.cpu_count() or 1, 8))
        subprocess.check_call(scons_command() + ['-Q', '-j', jobs,
                                                 'mode=release', STAGE],
                              cwd=TOP)
        for src, dst in self._files():
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy2(src, dst)

    def _files(self):
        names = [self.get_ext_filename(e.name).split(os.sep)[-1]
                 for e in self.extensions] + list(MADE)
        dest = os.path.join(self.build_lib, 'actx', IMPL)
        return [(os.path.join(TOP, STAGE, IMPL, n), os.path.join(dest, n))
                for n in names]

    def get_outputs(self):
        return [dst for _, dst in self._files()]


class EggInfoUnderBuild(egg_info):
    """Keep actx.egg-info out of the sources (python/)."""

    def initialize_options(self):
        super().initialize_options()
        base = os.path.join('build', 'setuptools')
        os.makedirs(os.path.join(TOP, base), exist_ok=True)
        self.egg_base = base


def long_description():
    with open(os.path.join(TOP, 'README.md')) as f:
        return f.read()


setup(
    name='actx',
    version=version(),
    description='Per-thread event loops with nested contexts (QEMU-style '
                'AsyncContext), C runtime with cffi and SWIG bindings',
    long_description=long_description(),
    long_description_content_type='text/markdown',
    classifiers=[
        'Programming Language :: Python :: 3',
        'Programming Language :: C',
        'License :: OSI Approved :: MIT License',
        'Operating System :: POSIX :: Linux',
        'Framework :: AsyncIO',
    ],
    license='MIT',
    python_requires='>=3.9',
    # The default backend needs cffi's runtime module (_cffi_backend); the
    # SWIG backend needs nothing (actx falls back to it, with a warning).
    install_requires=['cffi>=1.12'],
    packages=['actx', 'actx.' + IMPL],
    package_dir={'': 'python'},
    package_data={'actx': ['py.typed', '*.pyi']},
    ext_modules=[Extension('actx.%s._actx_cffi' % IMPL, sources=[]),
                 Extension('actx.%s._actx_swig' % IMPL, sources=[])],
    cmdclass={'build_ext': BuildWithSCons, 'egg_info': EggInfoUnderBuild},
    options={'build': {'build_base': os.path.join('build', 'setuptools')},
             'bdist_wheel': {'bdist_dir': os.path.join(
                 'build', 'setuptools', 'bdist')}},
    zip_safe=False,
)
