"""The Python side of benchmarks/harness/harness.h: command line, figures with
their samples, the text table, progress lines and the JSON file that
benchmarks/report.py reads (the same format as the C programs write).

    run = bench_util.Run('run.py', 'what it measures', reps=5)
    run.parse()                         # --help, --json, -n, -q
    run.banner('release')               # which build, which machine
    run.group('py', 'Python bindings')
    f = run.figure('BH schedule + run', 'us/op', better='lower')
    for _ in range(run.reps):
        f.add('actx cffi', measure_cffi(), actx=True)
        f.add('asyncio', measure_asyncio())
    f.target_ratio('asyncio', 1.0)      # actx at least 1x better
    f.done()                            # table row, progress, JSON
    sys.exit(run.finish())

A figure is a name, a unit, a direction ('lower' is better for times,
'higher' for rates), samples for one or more actx implementations (listed
first; the first is "actx" for ratios) and for each peer.  "x faster" is
peer/actx for 'lower' figures and actx/peer for 'higher' ones: above 1
always means actx is better.  Ratio targets are written the same way.

Command line: -h/--help, --json FILE, -n REPS, -q (quick); an unknown
option exits with status 2 (argparse).  Progress goes to stderr, one line
per figure.
"""
import argparse
import datetime
import json
import math
import os
import platform
import statistics
import sys


def machine():
    """CPU model, CPU count and kernel of this machine."""
    model = 'unknown'
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name') and ':' in line:
                    model = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    u = platform.uname()
    return {'cpu_model': model, 'cpus': os.cpu_count(),
            'kernel': '%s %s %s' % (u.system, u.release, u.machine)}


def fmt(v):
    """A figure as the C table prints it (bench_fmt)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return '-'
    a = abs(v)
    if v == 0:
        return '0'
    if a < 10:
        return '%.3f' % v
    if a < 100:
        return '%.2f' % v
    if a < 1e6:
        return '%.1f' % v
    return '%.3g' % v


class Figure:
    def __init__(self, run, name, unit, better):
        if better not in ('lower', 'higher'):
            raise ValueError('better must be "lower" or "higher"')
        self.run = run
        self.name = name
        self.unit = unit
        self.better = better
        self.group, self.group_title = run.cur_group
        self.impls = {}  # name -> {'actx': bool, 'samples': [...]}
        self.target = None  # ('abs', value) or ('ratio', peer, times)
        self.notes = []
        self.check_ok = None
        self.check_what = ''
        self.curve = None

    def add(self, impl, value, actx=False, ref=False):
        """One repetition's figure for impl (actx=True: an actx variant;
        ref=True: a reference such as a floor, not a peer: shown, but out
        of the summary of peers)."""
        m = self.impls.setdefault(impl, {'actx': actx, 'ref': ref,
                                         'samples': []})
        if value is not None and not math.isnan(value):
            m['samples'].append(float(value))

    def peer(self, impl):
        """Declare a peer that may get no samples (shown as -)."""
        self.impls.setdefault(impl, {'actx': False, 'samples': []})

    def x(self, curve, xlabel, x, target=None):
        """Make this figure a point of scaling curve `curve` at x."""
        self.curve = (curve, xlabel, x, target)

    def target_abs(self, value):
        self.target = ('abs', value)

    def target_ratio(self, peer, times):
        self.target = ('ratio', peer, times)

    def note(self, text):
        self.notes.append(text)

    def check(self, ok, what):
        """A correctness check of the measured runs (exit 1 if it fails)."""
        self.check_what = what
        self.check_ok = bool(ok) and self.check_ok is not False
        if not ok:
            print('%s: %s: check FAILED: %s' % (self.run.prog, self.name,
                                                 what), file=sys.stderr)

    # --- derived figures ---------------------------------------------------
    def ordered(self):
        """(name, info) with the actx implementations first."""
        items = list(self.impls.items())
        return ([i for i in items if i[1]['actx']] +
                [i for i in items if not i[1]['actx']])

    @staticmethod
    def stat(samples):
        if not samples:
            return None, None, None
        return min(samples), statistics.median(samples), max(samples)

    def actx_median(self):
        for _, m in self.ordered():
            if m['actx']:
                return self.stat(m['samples'])[1]
        return None

    def time_ratio(self, impl, peer):
        """impl's median over peer's, as text ('-' if either is missing)."""
        a, b = (self.stat(self.impls.get(k, {'samples': []})['samples'])[1]
                for k in (impl, peer))
        return '%.2fx' % (a / b) if a and b else '-'

    def x_faster(self, peer_median):
        a = self.actx_median()
        if not a or not peer_median:
            return None
        return peer_median / a if self.better == 'lower' else a / peer_median

    def target_met(self):
        """(text, met) with met True/False/None (not measured)."""
        if not self.target:
            return '', None
        if self.target[0] == 'abs':
            v = self.target[1]
            a = self.actx_median()
            op = '<=' if self.better == 'lower' else '>='
            text = '%s %g %s' % (op, v, self.unit)
            if a is None:
                return text, None
            return text, (a <= v) if self.better == 'lower' else (a >= v)
        _, peer, times = self.target
        text = '>= %.3gx %s' % (times, peer)
        m = self.impls.get(peer)
        xf = self.x_faster(self.stat(m['samples'])[1]) if m else None
        return text, None if xf is None else xf >= times

    def done(self):
        """Print the table rows and a progress line; keep it for the JSON."""
        text, met = self.target_met()
        if met is not None:
            text += '  ' + ('met' if met else 'MISSED')
        first = True
        for name, m in self.ordered():
            lo, med, hi = self.stat(m['samples'])
            xf = '' if m['actx'] else self.x_faster(med)
            xf = xf if isinstance(xf, str) else (
                '-' if xf is None else '%.2fx' % xf)
            print('%-44s %-9s %-20s %10s %10s %10s %8s  %s' % (
                self.name if first else '', self.unit if first else '',
                name, fmt(med), fmt(lo), fmt(hi), xf, text if first else ''))
            first = False
        if self.notes:
            print('%-44s   (%s)' % ('', '; '.join(self.notes)))
        if self.check_ok is not None:
            print('%-44s   check: %s: %s' % ('', self.check_what,
                                             'ok' if self.check_ok
                                             else 'FAILED'))
        sys.stdout.flush()
        parts = ['%s %s' % (n, fmt(self.stat(m['samples'])[1]))
                 for n, m in self.ordered()]
        print('[%s %d] %s: %s %s' % (self.run.prog, len(self.run.figs) + 1,
                                     self.name, ', '.join(parts), self.unit),
              file=sys.stderr)
        sys.stderr.flush()
        self.run.figs.append(self)

    def to_json(self):
        text, met = self.target_met()
        impls = []
        for name, m in self.ordered():
            lo, med, hi = self.stat(m['samples'])
            impls.append({'name': name, 'actx': m['actx'],
                          'ref': m.get('ref', False),
                          'n': len(m['samples']), 'median': med, 'min': lo,
                          'max': hi,
                          'x_faster': None if m['actx']
                          else self.x_faster(med),
                          'samples': m['samples']})
        d = {'group': self.group, 'group_title': self.group_title,
             'name': self.name, 'unit': self.unit, 'better': self.better}
        if self.curve:
            d.update(curve=self.curve[0], xlabel=self.curve[1],
                     x=self.curve[2], curve_target=self.curve[3])
        d.update(target=({'text': text, 'met': met} if self.target
                         else None),
                 note='; '.join(self.notes),
                 check=(None if self.check_ok is None
                        else {'what': self.check_what, 'ok': self.check_ok}),
                 impls=impls)
        return d


class Run:
    def __init__(self, prog, what, reps=5, argv=None, build=None):
        """Parse the command line (exits 0 after --help, 2 on an unknown
        option) and print the banner; build names the build of the module
        being measured ("release", ...)."""
        p = argparse.ArgumentParser(
            prog=prog, description=what,
            epilog='The table shows the median of the repetitions and '
                   'their min-max; "x faster" is peer/actx for times and '
                   'actx/peer for rates: above 1 means actx is better. '
                   'Progress goes to stderr, one line per figure.')
        p.add_argument('--json', metavar='FILE',
                       help='also write every figure, its samples and the '
                            'machine to FILE')
        p.add_argument('-n', type=int, default=reps, metavar='REPS',
                       help='repetitions of each figure (default %d)' % reps)
        p.add_argument('-q', action='store_true',
                       help='quick: 2 repetitions, a quarter of the work '
                            'each')
        self.parser = p
        self.prog = prog
        self.what = what
        self.build = build or 'unknown'
        self.args = None
        self.default_reps = reps
        self.argv = argv
        self.figs = []
        self.cur_group = (prog, None)

    def add_argument(self, *a, **kw):
        """A program-specific option (before parse())."""
        self.parser.add_argument(*a, **kw)

    def parse(self):
        a = self.parser.parse_args(self.argv)
        if a.n < 1:
            self.parser.error('-n wants a positive count')
        self.args = a
        self.reps = 2 if a.q else a.n
        self.scale = 0.25 if a.q else 1.0
        self.json = a.json
        self.machine = machine()
        self.date = datetime.datetime.now(datetime.timezone.utc).strftime(
            '%Y-%m-%dT%H:%M:%SZ')
        return a

    def banner(self, build=None):
        """Print which build and machine this is (after parse())."""
        if build:
            self.build = build
        m = self.machine
        print('%s: %s build, %d repetitions; %s, %s CPUs, %s, %s' % (
            self.prog, self.build, self.reps, m['cpu_model'], m['cpus'],
            m['kernel'], self.date))
        if self.build != 'release':
            print('%s: NOT a release build: these figures say nothing about '
                  "actx's speed (scons bench:py builds release)" % self.prog)
        sys.stdout.flush()

    def group(self, gid, title):
        self.cur_group = (gid, title)
        print('\n%s' % title)
        print('%-44s %-9s %-20s %10s %10s %10s %8s  %s' % (
            'benchmark', 'unit', 'implementation', 'median', 'min', 'max',
            'x faster', 'target'))
        print('%-44s %-9s %-20s %10s %10s %10s %8s  %s' % (
            '-' * 44, '-' * 9, '-' * 20, '-' * 10, '-' * 10, '-' * 10,
            '-' * 8, '------'))

    def figure(self, name, unit, better):
        return Figure(self, name, unit, better)

    def finish(self):
        """Write the JSON file if asked; the exit status (1: a check
        failed or the file could not be written)."""
        rc = 1 if any(f.check_ok is False for f in self.figs) else 0
        if self.json:
            doc = {'format': 'actx-bench-1', 'program': self.prog,
                   'build': self.build, 'date': self.date,
                   'machine': self.machine,
                   'options': {'reps': self.reps, 'rep_seconds': None,
                               'quick': bool(self.args.q)},
                   'figures': [f.to_json() for f in self.figs]}
            try:
                with open(self.json, 'w') as out:
                    json.dump(doc, out, indent=1)
                    out.write('\n')
            except OSError as e:
                print('%s: %s' % (self.prog, e), file=sys.stderr)
                return 1
            print('[%s] %d figures written to %s' % (
                self.prog, len(self.figs), self.json), file=sys.stderr)
        return rc
