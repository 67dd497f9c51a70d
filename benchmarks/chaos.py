"""The reliability suite at full size: chaos batch, crash-and-resume, soak; prints the figures.

    python benchmarks/chaos.py            # 2,000-job chaos batch, 5 SIGKILLs, 50,000-job soak
    python benchmarks/chaos.py --quick    # CI sizes (what the tests run)
    python benchmarks/chaos.py --jobs 5000 --soak 0

Exit status 1 when any figure breaks its guarantee (a lost job, a duplicate outside the
ambiguous submits, a corrupt file, memory growth, a leaked descriptor or task).
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _chaos_lib import crash_resume, run_chaos, run_soak


def main() -> int:
    """Run the three parts and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI sizes")
    parser.add_argument("--jobs", type=int, help="chaos batch size (default 2000; quick 400)")
    parser.add_argument("--inputs", type=int, help="crash-resume inputs (default 200; quick 40)")
    parser.add_argument("--kills", type=int, default=5, help="SIGKILLs (default 5)")
    parser.add_argument("--soak", type=int, help="soak jobs, 0 to skip (default 50000; quick 1500)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--ambiguity",
        action="store_true",
        help="only the chaos batch, twice: webhook references off (before) and on (after)",
    )
    args = parser.parse_args()
    jobs = args.jobs or (400 if args.quick else 2000)
    inputs = args.inputs or (40 if args.quick else 200)
    soak = args.soak if args.soak is not None else (1500 if args.quick else 50_000)
    broken = False
    with tempfile.TemporaryDirectory(prefix="akool-chaos-") as tmp:
        work = Path(tmp)
        if args.ambiguity:
            for label, wait in (("references off", None), ("references on", 2.0)):
                print(f"== chaos batch: {jobs:,} jobs, {label} ==", flush=True)
                (work / label).mkdir()
                run = functools.partial(
                    run_chaos, jobs, work / label, seed=args.seed, ambiguous_wait=wait
                )
                found = anyio.run(run)
                print("\n".join(found.lines()), flush=True)
                broken |= bool(found.problems) or found.duplicates > 0 or found.lost > 0
            print("\nRESULT:", "FAILED" if broken else "ok")
            return 1 if broken else 0

        print(f"== chaos batch: {jobs:,} jobs ==", flush=True)
        (work / "chaos").mkdir()
        chaos = anyio.run(functools.partial(run_chaos, jobs, work / "chaos", seed=args.seed))
        print("\n".join(chaos.lines()), flush=True)
        broken |= bool(chaos.problems) or chaos.duplicates > 0 or chaos.lost > 0

        print(f"\n== crash and resume: {inputs} inputs, {args.kills} SIGKILLs ==", flush=True)
        (work / "crash").mkdir()
        crash = crash_resume(inputs, work / "crash", kills=args.kills, seed=args.seed + 6)
        print("\n".join(crash.lines()), flush=True)
        broken |= bool(crash.problems)

        if soak:
            print(f"\n== soak: {soak:,} jobs ==", flush=True)
            (work / "soak").mkdir()
            figures = anyio.run(run_soak, soak, work / "soak")
            print("\n".join(figures.lines()), flush=True)
            broken |= (
                figures.succeeded != soak
                or figures.traced_second_half_peak > 1.25 * figures.traced_first_half_peak
                or figures.fds_after != figures.fds_before
                or figures.sockets_after != figures.sockets_before
                or figures.tasks_after != figures.tasks_before
            )
    print("\nRESULT:", "FAILED" if broken else "ok")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
