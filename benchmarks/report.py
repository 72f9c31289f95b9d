#!/usr/bin/python3
"""Turn the JSON files of a benchmark run into a report and charts.

    /usr/bin/python3 benchmarks/report.py build/bench
        [--out build/bench] [--readme README.md --img docs/bench]

reads every *.json in build/bench (written by the benchmark programs'
--json, see benchmarks/harness/harness.h and benchmarks/python/bench_util.py)
and writes

    build/bench/report.md     every figure: median, min-max, "x faster"
                              against each peer, target, checks; the curves
    build/bench/*.png         one bar chart per group (actx beside every
                              peer, min-max as error bars, log scale where
                              the figures span decades) and one chart per
                              scaling curve

With --readme, the part of README.md between the markers
<!-- bench-report:begin --> and <!-- bench-report:end --> is replaced by
the summary of this run and the charts are copied to --img (committed, so
that the README shows them).  `scons bench` runs this after every program;
`scons bench:report` runs only this.  Needs matplotlib (Debian:
python3-matplotlib).
"""
import argparse
import glob
import json
import math
import os
import re
import shutil
import sys

BEGIN = '<!-- bench-report:begin -->'
END = '<!-- bench-report:end -->'

# Programs in the order a reader meets them; others follow by name.
ORDER = ['bench-bh', 'bench-xthread', 'bench-pool', 'bench-io',
         'bench-scale', 'bench-service', 'run.py']


def load(paths):
    runs = []
    for p in paths:
        with open(p) as f:
            try:
                d = json.load(f)
            except ValueError as e:
                sys.exit('report.py: %s: not JSON: %s' % (p, e))
        if d.get('format') != 'actx-bench-1':
            sys.exit('report.py: %s: not an actx benchmark file' % p)
        d['path'] = p
        runs.append(d)
    runs.sort(key=lambda d: (ORDER.index(d['program'])
                             if d['program'] in ORDER else len(ORDER),
                             d['program']))
    return runs


def fmt(v):
    if v is None:
        return '-'
    a = abs(v)
    if v == 0:
        return '0'
    if a < 10:
        return '%.3g' % v
    if a < 1000:
        return '%.1f' % v if a < 100 else '%.0f' % v
    return '{:,.0f}'.format(v)


def fmt_n(x):
    """An x-axis value: 16, 1,000, 1e6."""
    if x is None:
        return '-'
    if x >= 1e6 and x == int(x):
        return '%ge%d' % (x / 10 ** int(math.log10(x)), int(math.log10(x)))
    if x == int(x):
        return '{:,}'.format(int(x))
    return '%g' % x


def fmt_x(v):
    return '-' if v is None else '%.2f×' % v


def spread(m):
    if m['min'] is None:
        return '-'
    return '%s–%s' % (fmt(m['min']), fmt(m['max']))


def target_cell(f):
    t = f.get('target')
    if not t:
        return ''
    met = t.get('met')
    state = {True: 'met', False: '**missed**', None: 'not measured'}[met]
    return '%s: %s' % (t['text'], state)


def check_cell(f):
    c = f.get('check')
    if not c:
        return ''
    return 'exactly once: ok' if c['ok'] else '**check FAILED: %s**' % c[
        'what']


def groups_of(runs):
    """[(group id, title, program, [figures])] of plain (non-curve) figures,
    and {curve: [figures]} in order."""
    groups, curves = [], {}
    for d in runs:
        for f in d['figures']:
            f['program'] = d['program']
            if f.get('curve'):
                curves.setdefault(f['curve'], []).append(f)
                continue
            if not groups or groups[-1][0] != f['group'] or \
                    groups[-1][2] != d['program']:
                groups.append((f['group'], f.get('group_title') or f['group'],
                               d['program'], []))
            groups[-1][3].append(f)
    return groups, curves


def curve_verdict(figs):
    """Evaluate a curve target over actx's medians: (text, met or None)."""
    tgt = next((f.get('curve_target') for f in figs
                if f.get('curve_target')), None)
    if not tgt:
        return '', None
    pts = [(f['x'], f['impls'][0]['median']) for f in figs
           if f['impls'] and f['impls'][0]['median']]
    if len(pts) < 2:
        return tgt, None
    if tgt.startswith('flat'):
        limit = float(tgt.split()[1])
        ys = [y for _, y in pts]
        r = max(ys) / min(ys)
        return ('flat within %g×: max/min of actx %.2f×' % (limit, r),
                r <= limit)
    if tgt.startswith('log '):
        ref = tgt[4:]
        rpts = {f['x']: m['median'] for f in figs for m in f['impls']
                if m['name'] == ref and m['median']}
        pts = [(x, y) for x, y in pts if x in rpts]
        if len(pts) < 2:
            return tgt, None
        (x0, y0), worst, at = pts[0], 0.0, None
        for x, y in pts[1:]:
            g = (y / y0) / (rpts[x] / rpts[x0])
            if g > worst:
                worst, at = g, x
        return ('O(log n) like %s: worst growth of actx relative to it %.2f× '
                '(at n=%s; at most 1.2×)' % (ref, worst, fmt_n(at)),
                worst <= 1.2)
    if tgt == 'log':
        (x0, y0), worst, at = pts[0], 0.0, None
        for x, y in pts[1:]:
            allowed = math.log(x) / math.log(x0) if x0 > 1 else float('inf')
            ratio = (y / y0) / allowed
            if ratio > worst:
                worst, at = ratio, x
        return ('at most O(log n) per item: worst (cost(n)/cost(%g)) / '
                '(ln n/ln %g) = %.2f at n=%s' % (x0, x0, worst, fmt_n(at)),
                worst <= 1.0)
    return tgt, None


# --- charts ------------------------------------------------------------------

# One colour per implementation family (the first word of its name), so
# that "libuv idle" and "libuv idle NOWAIT" match across charts.
FAMILY = {'raw': '#888888', 'libuv': '#e07b39', 'libevent': '#3b9a5a',
          'glib': '#8e6bbf', 'sync': '#c9a227', 'asyncio': '#5bb0c9',
          'uvloop': '#b55d7a'}
OTHER = ['#6b6b3a', '#a05050', '#50a0a0']
ACTX = ['#1f5fa8', '#6fa8dc']  # the first actx implementation, the others


def colors_for(names, actx_flags):
    out, k, a = [], 0, 0
    for n, is_actx in zip(names, actx_flags):
        if is_actx:
            out.append(ACTX[min(a, 1)])
            a += 1
            continue
        fam = n.split()[0].lower()
        if fam in FAMILY:
            out.append(FAMILY[fam])
        else:
            out.append(OTHER[k % len(OTHER)])
            k += 1
    return out


def spans_decades(values):
    vs = [v for v in values if v and v > 0]
    return len(vs) > 1 and max(vs) / min(vs) >= 30


def bar_chart(plt, path, title, figs):
    """One PNG: a panel per unit, a cluster per figure, a bar per impl."""
    by_unit = {}
    for f in figs:
        vals = [m['median'] for m in f['impls'] if m['median'] is not None]
        if not vals or all(v == 0 for v in vals):
            continue  # all-zero counts (mallocs) say more in the table
        by_unit.setdefault((f['unit'], f['better']), []).append(f)
    if not by_unit:
        return False
    n = len(by_unit)
    fig, axes = plt.subplots(1, n, figsize=(max(6, 4.2 * n + 1.5), 4.6),
                             squeeze=False)
    for ax, ((unit, better), ufigs) in zip(axes[0], by_unit.items()):
        names = []
        for f in ufigs:
            for m in f['impls']:
                if m['name'] not in names:
                    names.append(m['name'])
        flags = []
        for nm in names:
            flags.append(any(m['actx'] for f in ufigs for m in f['impls']
                             if m['name'] == nm))
        cols = colors_for(names, flags)
        width = 0.8 / max(1, max(len(f['impls']) for f in ufigs))
        allv = []
        for i, f in enumerate(ufigs):
            present = [m for m in f['impls'] if m['median'] is not None]
            for j, m in enumerate(present):
                x = i - 0.4 + width * (j + 0.5)
                med = m['median']
                err = [[max(0, med - m['min'])], [max(0, m['max'] - med)]]
                ax.bar(x, med, width, color=cols[names.index(m['name'])],
                       yerr=err, capsize=2, ecolor='#333333',
                       label=m['name'])
                allv += [m['min'], m['max'], med]
        ax.set_xticks(range(len(ufigs)))
        ax.set_xticklabels([wrap(f['name'], 18) for f in ufigs], fontsize=8)
        ax.set_ylabel('%s (%s is better)' % (unit, better))
        if spans_decades(allv):
            ax.set_yscale('log')
        ax.grid(axis='y', alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        seen = {}
        for h, lab in zip(handles, labels):
            seen.setdefault(lab, h)
        ax.legend(seen.values(), seen.keys(), fontsize=7, loc='best')
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def curve_chart(plt, path, name, figs):
    figs = sorted(figs, key=lambda f: f['x'])
    xs = [f['x'] for f in figs]
    names = []
    for f in figs:
        for m in f['impls']:
            if m['name'] not in names:
                names.append(m['name'])
    flags = [any(m['actx'] for f in figs for m in f['impls']
                 if m['name'] == nm) for nm in names]
    cols = colors_for(names, flags)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    allv = []
    for nm, col in zip(names, cols):
        pts = [(f['x'], m) for f in figs for m in f['impls']
               if m['name'] == nm and m['median'] is not None]
        if not pts:
            continue
        x = [p[0] for p in pts]
        med = [p[1]['median'] for p in pts]
        lo = [p[1]['min'] for p in pts]
        hi = [p[1]['max'] for p in pts]
        ax.plot(x, med, marker='o', color=col, label=nm,
                linewidth=2.2 if nm == names[0] else 1.4)
        ax.fill_between(x, lo, hi, color=col, alpha=0.15)
        allv += lo + hi
    if spans_decades(xs):
        ax.set_xscale('log')
    if spans_decades(allv):
        ax.set_yscale('log')
    ax.set_xlabel(figs[0].get('xlabel') or name)
    ax.set_ylabel('%s (%s is better)' % (figs[0]['unit'], figs[0]['better']))
    verdict, met = curve_verdict(figs)
    title = name
    if verdict:
        title += '\n' + verdict + (' — met' if met else
                                   ' — missed' if met is False else '')
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def impl_name(m):
    """An implementation's name in the tables; a reference (a floor that
    no implementation can beat, say) is marked as one."""
    return m['name'] + (' [reference]' if m.get('ref') else '')


def summary_chart(plt, path, groups):
    """Every plain figure's "x faster" against each peer, on one chart."""
    rows = []
    for _, _, prog, figs in groups:
        for f in figs:
            for m in f['impls']:
                if not m['actx'] and not m.get('ref') and \
                        m.get('x_faster'):
                    rows.append(('%s: %s' % (f['name'], m['name']),
                                 m['x_faster'], m['name']))
    if not rows:
        return False
    rows.reverse()
    fig, ax = plt.subplots(figsize=(8, 0.26 * len(rows) + 1.2))
    cols = colors_for([r[2] for r in rows], [False] * len(rows))
    # Bars grow from 1 (as fast as the peer): right, actx better; left,
    # the peer better.
    ax.barh(range(len(rows)), [r[1] - 1 for r in rows], left=1, color=cols)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([r[0] for r in rows], fontsize=7)
    ax.set_xscale('log')
    ax.axvline(1, color='#333333', linewidth=1)
    ax.set_xlabel('x faster (peer/actx for times, actx/peer for rates): '
                  'right of 1, actx is better')
    ax.grid(axis='x', alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def wrap(s, n):
    words, lines, cur = s.split(), [], ''
    for w in words:
        if cur and len(cur) + 1 + len(w) > n:
            lines.append(cur)
            cur = w
        else:
            cur = (cur + ' ' + w).strip()
    lines.append(cur)
    return '\n'.join(lines)


def slug(s):
    return re.sub(r'[^a-z0-9]+', '-', s.lower()).strip('-')


# --- text ----------------------------------------------------------------------

def run_line(runs):
    """One sentence naming the run: date(s), machine, build."""
    d0 = runs[0]
    m = d0['machine']
    dates = sorted(d['date'] for d in runs)
    builds = sorted(set(d['build'] for d in runs))
    quick = any(d['options'].get('quick') for d in runs)
    s = ('`scons bench` on %s (%s to %s UTC): %s, %s CPUs, %s; %s build%s' % (
        dates[0][:10], dates[0][11:16], dates[-1][11:16], m['cpu_model'],
        m['cpus'], m['kernel'], '/'.join(builds),
        '; QUICK run (-q): fewer, shorter repetitions' if quick else ''))
    host = host_costs(runs)
    if host:
        s += '; ' + host
    if builds != ['release']:
        s += ' — **not a release build: these figures mean nothing**'
    return s


def host_costs(runs):
    """What a system call and a cross-thread wake-up cost on the host, as
    the C programs measured them when they started (the median over the
    programs of their medians), or '' if no program recorded them."""
    def med(key):
        v = sorted(d['machine'][key] for d in runs
                   if d['machine'].get(key) is not None)
        if not v:
            return None
        return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] +
                                                    v[len(v) // 2]) / 2
    sc, wk = med('syscall_ns'), med('wakeup_rt_us')
    parts = []
    if sc is not None:
        parts.append('a system call (getppid) %.2f µs' % (sc / 1e3))
    if wk is not None:
        parts.append('a cross-thread wake-up (eventfd ping-pong between two '
                     'blocked threads) %.1f µs a round trip' % wk)
    return ' and '.join(parts) + ' (medians)' if parts else ''


def report_md(runs, groups, curves, charts):
    out = ['# actx benchmark report', '', run_line(runs) + '.', '',
           'Each figure is the median of its repetitions, with their '
           'min–max. "x faster" is peer/actx for times and actx/peer for '
           'rates: above 1 means actx is better. Compare ratios, not '
           'absolute figures, on a shared machine.', '']
    if charts.get('summary'):
        out += ['![x faster, every figure](%s)' % charts['summary'], '']
    out += ['| program | date (UTC) | repetitions | file |', '|---|---|---|---|']
    for d in runs:
        out.append('| %s | %s | %s%s | %s |' % (
            d['program'], d['date'], d['options'].get('reps'),
            ' (quick)' if d['options'].get('quick') else '',
            os.path.basename(d['path'])))
    out.append('')
    for gid, title, prog, figs in groups:
        out += ['## %s (`%s`)' % (title, prog), '']
        if charts.get(('group', prog, gid)):
            out += ['![%s](%s)' % (title, charts[('group', prog, gid)]), '']
        out += ['| benchmark | unit | implementation | median | min–max | '
                'x faster | target / check |', '|---|---|---|---|---|---|---|']
        for f in figs:
            first = True
            for m in f['impls']:
                tc = ''
                if first:
                    tc = '; '.join(x for x in (target_cell(f), check_cell(f))
                                   if x)
                out.append('| %s | %s | %s | %s | %s | %s | %s |' % (
                    f['name'] if first else '', f['unit'] if first else '',
                    impl_name(m), fmt(m['median']), spread(m),
                    '' if m['actx'] else fmt_x(m.get('x_faster')), tc))
                first = False
            if f.get('note'):
                out.append('| | | *%s* | | | | |' % f['note'])
        out.append('')
    for name, figs in curves.items():
        figs = sorted(figs, key=lambda f: f['x'])
        out += ['## Curve: %s (`%s`)' % (name, figs[0]['program']), '']
        if charts.get(('curve', name)):
            out += ['![%s](%s)' % (name, charts[('curve', name)]), '']
        verdict, met = curve_verdict(figs)
        if verdict:
            out += ['Target: %s — %s.' % (verdict, {True: 'met',
                                                    False: '**missed**',
                                                    None: 'not measured'}
                                          [met]), '']
        names = []
        for f in figs:
            for m in f['impls']:
                if m['name'] not in names:
                    names.append(m['name'])
        out += ['| %s | %s | exactly once |' % (
            figs[0].get('xlabel') or 'x',
            ' | '.join('%s (%s)' % (n, figs[0]['unit']) for n in names)),
            '|---|' + '---|' * len(names) + '---|']
        for f in figs:
            cells = []
            for n in names:
                m = next((m for m in f['impls'] if m['name'] == n), None)
                cells.append('-' if not m or m['median'] is None else
                             '%s (%s)' % (fmt(m['median']), spread(m)))
            c = f.get('check')
            out.append('| %s | %s | %s |' % (
                fmt_n(f['x']), ' | '.join(cells),
                '-' if not c else 'ok' if c['ok'] else '**FAILED**'))
        out.append('')
    return '\n'.join(out) + '\n'


def readme_block(runs, groups, curves, img_rel):
    """The README's generated part: summary tables and charts."""
    out = [BEGIN,
           '<!-- Generated by benchmarks/report.py from one `scons bench` '
           'run; do not edit by hand (see benchmarks/README.md). -->', '',
           'From ' + run_line(runs) + '. Median of the repetitions, '
           'actx\'s min–max over them in brackets (every implementation\'s '
           'in build/bench/report.md); **x faster** is peer/actx '
           'for times and actx/peer for rates, so above 1 means actx is '
           'better.', '']
    cgroups = [g for g in groups if g[2] != 'run.py']
    pgroups = [g for g in groups if g[2] == 'run.py']
    if cgroups:
        out += ['| benchmark | actx (min–max) | peers in the same run '
                '(x faster) | target |', '|---|---|---|---|']
        for _, _, prog, figs in cgroups:
            for f in figs:
                a = f['impls'][0]
                peers = ', '.join('%s %s (%s)' % (m['name'], fmt(m['median']),
                                                  fmt_x(m.get('x_faster')))
                                  for m in f['impls'][1:]
                                  if m['median'] is not None)
                out.append('| %s | %s %s (%s) | %s | %s |' % (
                    f['name'], fmt(a['median']), f['unit'], spread(a),
                    peers or '-', target_cell(f)))
        out.append('')
    if pgroups:
        out += ['Python (`benchmarks/python/run.py`, both backends):', '',
                '| benchmark | actx | peers (x faster than the first actx '
                'backend) | target |', '|---|---|---|---|']
        for _, _, prog, figs in pgroups:
            for f in figs:
                actx = ', '.join('%s %s' % (m['name'], fmt(m['median']))
                                 for m in f['impls'] if m['actx'])
                peers = ', '.join('%s %s (%s)' % (impl_name(m),
                                                  fmt(m['median']),
                                                  fmt_x(m.get('x_faster')))
                                  for m in f['impls'] if not m['actx'] and
                                  m['median'] is not None)
                out.append('| %s | %s %s | %s | %s |' % (
                    f['name'], actx, f['unit'], peers or '-',
                    target_cell(f)))
        out.append('')
    if curves:
        out += ['Scaling curves (actx; every point checked exactly-once):',
                '']
        for name, figs in curves.items():
            figs = sorted(figs, key=lambda f: f['x'])
            pts = ', '.join('%s: %s' % (fmt_n(f['x']),
                                        fmt(f['impls'][0]['median']))
                            for f in figs)
            verdict, met = curve_verdict(figs)
            ok = all((f.get('check') or {}).get('ok', True) for f in figs)
            out.append('- **%s** (%s, by %s): %s%s%s' % (
                name, figs[0]['unit'], figs[0].get('xlabel'), pts,
                ('; target ' + verdict + (': met' if met else
                                          ': **missed**' if met is False
                                          else '')) if verdict else '',
                '' if ok else '; **exactly-once check FAILED**'))
        out.append('')
    if img_rel:
        out += ['Charts (bars: median, whiskers: min–max):', '']
        for p in img_rel:
            out.append('![%s](%s)' % (os.path.splitext(
                os.path.basename(p))[0], p))
        out.append('')
    out.append(END)
    return '\n'.join(out)


def update_readme(path, block):
    with open(path) as f:
        text = f.read()
    if BEGIN not in text or END not in text:
        sys.exit('report.py: %s has no %s ... %s markers' % (path, BEGIN,
                                                              END))
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    new = head + block + tail
    if new != text:
        with open(path, 'w') as f:
            f.write(new)
    return new != text


def main(argv=None):
    p = argparse.ArgumentParser(
        description='Turn benchmark JSON files into build/bench/report.md, '
                    'PNG charts and the README\'s figures.')
    p.add_argument('inputs', nargs='+',
                   help='JSON files, or directories holding them')
    p.add_argument('--out', help='where report.md and the PNGs go (default: '
                                 'the first input directory)')
    p.add_argument('--readme', help='rewrite the figures between the '
                                    'bench-report markers of this file')
    p.add_argument('--img', help='copy the charts here for --readme '
                                 '(default: docs/bench beside it)')
    a = p.parse_args(argv)
    paths = []
    for i in a.inputs:
        if os.path.isdir(i):
            paths += sorted(glob.glob(os.path.join(i, '*.json')))
        else:
            paths.append(i)
    if not paths:
        sys.exit('report.py: no JSON files in %s' % ' '.join(a.inputs))
    out = a.out or next((i for i in a.inputs if os.path.isdir(i)),
                        os.path.dirname(paths[0]) or '.')
    os.makedirs(out, exist_ok=True)
    runs = load(paths)
    groups, curves = groups_of(runs)

    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    charts = {}
    pngs = []
    if summary_chart(plt, os.path.join(out, 'summary-x-faster.png'), groups):
        charts['summary'] = 'summary-x-faster.png'
        pngs.append('summary-x-faster.png')
    for gid, title, prog, figs in groups:
        name = 'bench-%s.png' % slug(gid if gid != prog else prog)
        if bar_chart(plt, os.path.join(out, name), '%s (%s)' % (title, prog),
                     figs):
            charts[('group', prog, gid)] = name
            pngs.append(name)
    for cname, figs in curves.items():
        name = 'curve-%s.png' % slug(cname)
        curve_chart(plt, os.path.join(out, name), cname, figs)
        charts[('curve', cname)] = name
        pngs.append(name)
    with open(os.path.join(out, 'report.md'), 'w') as f:
        f.write(report_md(runs, groups, curves, charts))
    print('report.py: %s/report.md and %d charts from %d files' % (
        out, len(pngs), len(paths)))
    if a.readme:
        img = a.img or os.path.join(os.path.dirname(
            os.path.abspath(a.readme)), 'docs', 'bench')
        os.makedirs(img, exist_ok=True)
        for old in glob.glob(os.path.join(img, '*.png')):
            if os.path.basename(old) not in pngs:
                os.remove(old)
        for png in pngs:
            shutil.copyfile(os.path.join(out, png), os.path.join(img, png))
        rel = [os.path.relpath(os.path.join(img, png), os.path.dirname(
            os.path.abspath(a.readme))) for png in pngs]
        changed = update_readme(a.readme, readme_block(runs, groups, curves,
                                                       rel))
        print('report.py: %s %s; charts in %s' % (
            a.readme, 'updated' if changed else 'already in sync', img))
    failed = [f['name'] for d in runs for f in d['figures']
              if f.get('check') and not f['check']['ok']]
    if failed:
        print('report.py: exactly-once checks FAILED: %s' % ', '.join(failed),
              file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
