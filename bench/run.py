"""Run every benchmark in bench/ in turn (`make bench`), each in its own process.

    .venv/bin/python bench/run.py            # all of them
    .venv/bin/python bench/run.py intake     # only bench_intake.py

Each prints its figures and a `RESULT …` line; the RESULT lines are repeated at the end,
the inbound intake's last.
"""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["intake", "queue", "delivery", "small_intake"]  # any other bench_*.py runs after these, in name order


def benchmarks(wanted):
    found = {p.stem.removeprefix("bench_"): p for p in HERE.glob("bench_*.py")}
    names = [n for n in ORDER if n in found] + sorted(n for n in found if n not in ORDER)
    unknown = [n for n in wanted if n not in found]
    if unknown:
        raise SystemExit(f"no such benchmark: {', '.join(unknown)} (have: {', '.join(names)})")
    return [(n, found[n]) for n in names if not wanted or n in wanted]


def main(argv):
    results, failed = {}, []
    for name, path in benchmarks(argv):
        print(f"== {name} ({path.name})", flush=True)
        process = subprocess.Popen([sys.executable, str(path)], cwd=HERE.parent, stdout=subprocess.PIPE, text=True)
        for line in process.stdout:
            print(line, end="", flush=True)
            if line.startswith("RESULT "):
                results[name] = line.rstrip("\n")
        if process.wait() != 0:
            failed.append(name)
            print(f"== {name} failed (exit status {process.returncode})", flush=True)
    if len(results) > 1:
        print("== results", flush=True)
        for name in sorted(results, key=lambda n: n == "intake"):
            print(results[name], flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
