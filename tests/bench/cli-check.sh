#!/bin/bash
# The benchmark programs as tools (benchmarks/README.md): every program
# answers --help with its usage and exit 0 without running anything, and
# an unknown option with exit 2; a quick --json run writes every figure
# with its samples and the machine; benchmarks/report.py turns JSON files
# into report.md, charts and a README block between its markers.  Nothing
# here looks at a timing.  `scons test` runs it in debug and release.
#
#   tests/bench/cli-check.sh BENCHDIR PYTHON
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
bench=$1
py=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "cli-check: $*" >&2; exit 1; }

n=0
for prog in "$bench"/bench-*; do
    [ -x "$prog" ] || continue
    case $prog in *.o) continue ;; esac
    name=$(basename "$prog")
    out=$("$prog" --help) || fail "$name --help: exit $?"
    grep -q "^usage: $name" <<<"$out" || fail "$name --help: no usage line"
    grep -q -- "--json FILE" <<<"$out" || fail "$name --help: no --json"
    grep -q "^$name: [a-z]* build," <<<"$out" && fail "$name --help: it ran"
    rc=0
    "$prog" --no-such-option >/dev/null 2>"$work/err" || rc=$?
    [ $rc -eq 2 ] || fail "$name --no-such-option: exit $rc, want 2"
    grep -q "unknown option" "$work/err" || fail "$name: no error message"
    n=$((n + 1))
done
[ $n -ge 5 ] || fail "only $n benchmark programs in $bench"

rc=0
"$py" "$top/benchmarks/python/run.py" --help >"$work/help" || rc=$?
[ $rc -eq 0 ] || fail "run.py --help: exit $rc"
grep -q -- "--json FILE" "$work/help" || fail "run.py --help: no --json"
rc=0
"$py" "$top/benchmarks/python/run.py" --no-such-option 2>/dev/null || rc=$?
[ $rc -eq 2 ] || fail "run.py --no-such-option: exit $rc, want 2"

# One real run, quick: the JSON, the progress lines, the build banner.
"$bench/bench-bh" -q --json "$work/bench-bh.json" >"$work/out" 2>"$work/err" ||
    fail "bench-bh -q --json: exit $?"
grep -q "^bench-bh: [a-z]* build" "$work/out" || fail "bench-bh: no build line"
grep -q "^bench-bh: host: a system call" "$work/out" ||
    fail "bench-bh: no host costs in the banner"
# -only, parsed by the harness for every program: one figure, one peer.
"$bench/bench-bh" -q -only chain,raw >"$work/only" 2>/dev/null ||
    fail "bench-bh -only chain,raw: exit $?"
grep -q "^bh chain" "$work/only" && ! grep -q "^bh burst" "$work/only" ||
    fail "bench-bh -only chain,raw: wrong figures"
[ "$(grep -c '^\[bench-bh [0-9]*\]' "$work/err")" -ge 3 ] ||
    fail "bench-bh: no progress line per figure on stderr"
"$py" - "$work/bench-bh.json" <<'PY' || fail "bench-bh.json incomplete"
import json, sys
d = json.load(open(sys.argv[1]))
assert d['format'] == 'actx-bench-1' and d['program'] == 'bench-bh'
assert d['build'] and d['date']
for k in ('cpu_model', 'cpus', 'kernel'):
    assert d['machine'][k], k
for k in ('syscall_ns', 'wakeup_rt_us'):  # the host's costs
    assert d['machine'][k] > 0, k
assert len(d['figures']) >= 3
for f in d['figures']:
    assert f['name'] and f['unit'] and f['better'] in ('lower', 'higher')
    assert f['impls'][0]['name'] == 'actx' and f['impls'][0]['actx']
    for m in f['impls']:
        if m['n']:
            assert m['min'] <= m['median'] <= m['max'], m
            assert len(m['samples']) == m['n']
PY

# report.py: report, charts, README block between the markers (in a copy).
printf 'before\n<!-- bench-report:begin -->\nold\n<!-- bench-report:end -->\nafter\n' \
    >"$work/README.md"
"$py" "$top/benchmarks/report.py" --out "$work/out-report" \
    --readme "$work/README.md" --img "$work/img" "$work/bench-bh.json" \
    >/dev/null || fail "report.py: exit $?"
[ -s "$work/out-report/report.md" ] || fail "report.py: no report.md"
ls "$work/img"/*.png >/dev/null 2>&1 || fail "report.py: no chart"
grep -q "bh burst x1024" "$work/README.md" || fail "report.py: README block"
grep -q "^old$" "$work/README.md" && fail "report.py: old block kept"
head -1 "$work/README.md" | grep -q before || fail "report.py: head lost"
tail -1 "$work/README.md" | grep -q after || fail "report.py: tail lost"
echo "cli-check: $n programs and run.py: --help, exit 2, --json, report.py: ok"
