#!/bin/bash
# tests/model/run.sh - model-check the mailbox wake-up protocol with spin.
#
#   tests/model/run.sh          the checks `scons test:model` runs (debug)
#   tests/model/run.sh --all    also larger configurations and variants
#
# Each check is spin -a, gcc, ./pan (exhaustive search) in a scratch
# directory, and prints one line:
#   mailbox.pml -DO1=0 ...: no errors, 48886 states
# Checks of the protocol must find no error.  Mutants (-DMUT_*, see the
# comments of the models) must FAIL: they prove the model can see the bug
# each step is there to prevent.  Exit status 1 if any check's outcome is
# not the expected one (its scratch directory and trail are then kept and
# a replay command is printed), 2 if spin or gcc is missing.
set -u

here=$(cd "$(dirname "$0")" && pwd)
all=0
case "${1:-}" in
--all) all=1 ;;
"") ;;
*) echo "usage: $0 [--all]" >&2; exit 2 ;;
esac

cc=${CC:-gcc}
for tool in spin "$cc"; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "run.sh: $tool not found (scripts/install-deps.sh installs spin)" >&2
        exit 2
    fi
done

# The O1 step runtime/src/mailbox.c implements (actx__mb_rearm): 1 = if
# notified, read the eventfd, then store false.  0 (exchange notified to
# false, then read) is what the code did up to 31cf08d: it loses wake-ups
# and is kept below as a mutant that must fail.
CODE_O1=1

checks=()   # expect|kind|model|defines
add() { checks+=("$1|$2|$3|$4"); }

# --- the protocol as the code implements it -----------------------------
add pass safety mailbox.pml "-DO1=$CODE_O1 -DNPOST=2 -DNMSG=2"
add pass safety mailbox.pml "-DO1=$CODE_O1 -DNPOST=3 -DNMSG=2"
add pass np     mailbox.pml "-DO1=$CODE_O1 -DNPOST=2 -DNMSG=2"
add pass safety bh-idle.pml "-DO1=$CODE_O1 -DNTHR=2 -DNOPS=2"
# adaptive polling before the sleep (actx_set_poll_max_ns)
add pass safety mailbox.pml "-DO1=$CODE_O1 -DPOLL -DNPOST=2 -DNMSG=2"
add pass np     mailbox.pml "-DO1=$CODE_O1 -DPOLL -DNPOST=2 -DNMSG=2"
# nested waits: posts for outer contexts do not wake a nested sleep
add pass safety mailbox.pml "-DO1=$CODE_O1 -DDEPTH -DNPOST=2 -DNMSG=2"
add pass safety mailbox.pml "-DO1=$CODE_O1 -DDEPTH -DNPOST=3 -DNMSG=2"
add pass np     mailbox.pml "-DO1=$CODE_O1 -DDEPTH -DNPOST=2 -DNMSG=2"
# --- the proposed O1 (until the code has it) ----------------------------
if [ "$CODE_O1" != 1 ]; then
    add pass safety mailbox.pml "-DO1=1 -DNPOST=2 -DNMSG=2"
    add pass safety mailbox.pml "-DO1=1 -DNPOST=3 -DNMSG=2"
    add pass np     mailbox.pml "-DO1=1 -DNPOST=2 -DNMSG=2"
    add pass safety bh-idle.pml "-DO1=1 -DNTHR=2 -DNOPS=2"
fi
# --- mutants: each must fail ----------------------------------------------
add fail safety mailbox.pml "-DO1=0 -DNPOST=2 -DNMSG=2"
add fail safety mailbox.pml "-DO1=1 -DMUT_NO_O1_CLEAR"
add fail safety mailbox.pml "-DO1=1 -DMUT_SWAP_O2_O3"
add fail safety mailbox.pml "-DO1=1 -DDEPTH -DMUT_DEPTH_STALE"
add fail safety mailbox.pml "-DO1=1 -DDEPTH -DMUT_DEPTH_STRICT"
add fail safety mailbox.pml "-DO1=1 -DMUT_P2_BEFORE_P1"
add fail safety mailbox.pml "-DO1=1 -DMUT_O4_BEFORE_WAKE"
add fail np     mailbox.pml "-DO1=1 -DMUT_NO_WAKE_READ"
add fail safety bh-idle.pml "-DO1=1 -DMUT_NO_REREAD"
add fail safety bh-idle.pml "-DO1=1 -DMUT_REREAD_FIRST"
add fail safety bh-idle.pml "-DO1=1 -DMUT_NO_MAILED_NOTIFY"
add fail safety bh-idle.pml "-DO1=1 -DMUT_UNBOUNDED_AS_ANY"
add fail safety bh-idle.pml "-DO1=1 -DMUT_UNBOUNDED_AS_ANY -DLOOSE"
add fail safety mailbox.pml "-DO1=1 -DPOLL -DMUT_POLL_ARMED"
add fail safety mailbox.pml "-DO1=1 -DPOLL -DMUT_POLL_TRUST"
# --- --all: bigger, the QEMU-style O1, unbounded-only (LOOSE) results ----
if [ "$all" = 1 ]; then
    add pass safety mailbox.pml "-DO1=1 -DNPOST=3 -DNMSG=2 -DNSPUR=2"
    add pass safety mailbox.pml "-DO1=1 -DPOLL -DNPOLL=3 -DNPOST=3 -DNMSG=2"
    add pass np     mailbox.pml "-DO1=1 -DNPOST=3 -DNMSG=2"
    add pass safety mailbox.pml "-DO1=2 -DNPOST=3 -DNMSG=2"
    add pass np     mailbox.pml "-DO1=2 -DNPOST=3 -DNMSG=2"
    add pass safety bh-idle.pml "-DO1=1 -DNTHR=3 -DNOPS=1"
    add pass safety bh-idle.pml "-DO1=2 -DNTHR=2 -DNOPS=2"
    add pass safety bh-idle.pml "-DO1=1 -DLOOSE"
    # Latency-only steps: an unbounded sleep does not need them.
    add pass safety bh-idle.pml "-DO1=1 -DLOOSE -DMUT_NO_REREAD"
    add pass safety bh-idle.pml "-DO1=1 -DLOOSE -DMUT_REREAD_FIRST"
    add pass safety bh-idle.pml "-DO1=1 -DLOOSE -DMUT_NO_MAILED_NOTIFY"
    add fail safety mailbox.pml "-DO1=0 -DNPOST=2 -DNMSG=2"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/actx-model.XXXXXX")
keep=0
cleanup() { [ "$keep" = 1 ] || rm -rf "$work"; }
trap cleanup EXIT

# check INDEX: run one check, write its one-line result and status
check() {
    local i=$1 expect kind model defs dir ccflags panflags opt
    IFS='|' read -r expect kind model defs <<<"${checks[$i]}"
    dir=$work/$i
    mkdir -p "$dir"
    cp "$here/$model" "$dir/"
    # Mutants stop at their first error: compiling pan fast beats
    # searching fast.
    opt=-O2
    [ "$expect" = fail ] && opt=-O0
    if [ "$kind" = np ]; then
        ccflags="-DNP -DCOLLAPSE"; panflags="-l"
    else
        ccflags="-DSAFETY -DCOLLAPSE"; panflags=""
    fi
    local name="$model $defs"
    [ "$kind" = np ] && name="$name [non-progress cycles]"
    (
        cd "$dir" || exit 1
        # shellcheck disable=SC2086
        spin $defs -a "$model" >spin.log 2>&1 &&
            $cc $opt $ccflags -o pan pan.c >cc.log 2>&1 &&
            ./pan -m100000 $panflags >pan.out 2>&1
    )
    local rc=$? line status=0 errors states what
    if [ $rc -ne 0 ] && ! grep -q "errors: [1-9]" "$dir/pan.out" 2>/dev/null; then
        line="$name: TOOL FAILURE (see $dir)"
        status=1
    else
        errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$dir/pan.out")
        states=$(awk '/states, stored/ { print $1; exit }' "$dir/pan.out")
        what=$(sed -n 's/^pan:1: \(.*\) (at depth \([0-9]*\)).*/\1 at depth \2/p' \
            "$dir/pan.out" | head -n1)
        if grep -q "max search depth too small" "$dir/pan.out"; then
            line="$name: INCOMPLETE (max search depth too small)"
            status=1
        elif [ "$expect" = pass ] && [ "$errors" = 0 ]; then
            line="$name: no errors, $states states"
        elif [ "$expect" = fail ] && [ "$errors" != 0 ]; then
            line="$name: fails as expected ($what), $states states"
        elif [ "$expect" = pass ]; then
            line="$name: ERROR: $what ($states states); replay: cd $dir && spin $defs -t -p -g -l $model"
            status=1
        else
            line="$name: UNEXPECTED PASS ($states states): the mutant is not caught"
            status=1
        fi
    fi
    echo "$line" >"$dir/result"
    echo "$status" >"$dir/status"
}

jobs_max=${JOBS:-$(nproc 2>/dev/null || echo 2)}
start=$SECONDS
for i in "${!checks[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do
        wait -n
    done
    check "$i" &
done
wait

failed=0
for i in "${!checks[@]}"; do
    cat "$work/$i/result" 2>/dev/null || echo "${checks[$i]}: no result"
    if [ "$(cat "$work/$i/status" 2>/dev/null)" != 0 ]; then
        failed=$((failed + 1))
    fi
done
if [ "$failed" -ne 0 ]; then
    keep=1
    echo "tests/model: $failed of ${#checks[@]} checks FAILED ($((SECONDS - start)) s; scratch kept in $work)"
    exit 1
fi
echo "tests/model: all ${#checks[@]} checks as expected ($((SECONDS - start)) s)"
