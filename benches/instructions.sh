#!/usr/bin/env bash
# Instructions per run of the runs bench's echo, one-step (email) and
# bare-step (one step on a connector that does nothing) runs at 1024 in
# flight, counted by callgrind: a figure the machine's load, clock and
# fdatasync do not move, to compare two commits or the targets.
# Per run = (instructions of RUNS runs - instructions of RUNS/5 runs) /
# (4/5 RUNS), which cancels start-up. Thread 1 runs the orchestrator, the
# built-in agents and their steps; "all" adds the log's writer and the rest
# (valgrind runs one thread at a time and without SHA extensions, so the
# writer's share is not what it is natively).
#
# Needs valgrind (`apt-get install valgrind`). Usage: benches/instructions.sh [RUNS]
# (NEONHUB_BENCH_BIN=path/to/runs-bench to count another build's).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-25000}
small=$((runs / 5))
# NEONHUB_BENCH_BIN: a runs bench binary built elsewhere (another commit).
bin=${NEONHUB_BENCH_BIN:-$(cargo bench --bench runs --no-run 2>&1 | sed -n 's/.*Executable benches\/runs.rs (\(.*\))/\1/p')}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for target in echo_durable email_one_step bare_step; do
  for n in "$small" "$runs"; do
    NEONHUB_BENCH_COUNT="$target:$n" valgrind --tool=callgrind --separate-threads=yes \
      --dump-instr=no --callgrind-out-file="$out/$target-$n.%p" "$bin" --bench >/dev/null 2>&1
  done
done
python3 - "$out" "$small" "$runs" <<'PY'
import glob, re, sys
out, small, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def totals(target, n):
    # By process (a short-lived fork of the bench writes its own files),
    # then by thread; the bench's process is the one that did the most.
    by_pid = {}
    for f in glob.glob(f"{out}/{target}-{n}.*"):
        m = re.search(r"\.(\d+)(?:-(\d+))?$", f)
        pid, thread = int(m.group(1)), int(m.group(2) or 0)
        for line in open(f, errors="replace"):
            if line.startswith(("summary:", "totals:")):
                by_pid.setdefault(pid, {})[thread] = int(line.split()[1])
                break
    return max(by_pid.values(), key=lambda t: sum(t.values()))
per = {}
for target in ("echo_durable", "email_one_step", "bare_step"):
    a, b = totals(target, small), totals(target, runs)
    per[target] = {t: (b.get(t, 0) - a.get(t, 0)) / (runs - small) for t in set(a) | set(b)}
    print(f"{target:>15}: thread 1 {per[target].get(1, 0):8.0f}  all {sum(per[target].values()):8.0f} instructions per run")
e = per["echo_durable"]
for target, label in (("email_one_step", "one step"), ("bare_step", "bare step")):
    s = per[target]
    print(f"echo / {label}: thread 1 {e.get(1, 0) / s.get(1, 1):.3f}, all {sum(e.values()) / sum(s.values()):.3f}")
PY
