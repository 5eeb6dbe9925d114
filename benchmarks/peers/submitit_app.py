"""submitit's LocalExecutor running the toy trial, one job per seed, all submitted at once as a job array:
`python submitit_app.py N DIR`. Returns when every job's result is back."""

from __future__ import annotations

import argparse
import os

import submitit
from toy_work import toy_work


def trial(seed: int, out_dir: str) -> float:
    return toy_work(1, seed, os.path.join(out_dir, f"seed{seed}"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("trials", type=int)
    parser.add_argument("dir")
    args = parser.parse_args()
    executor = submitit.LocalExecutor(folder=os.path.join(args.dir, "submitit"))
    executor.update_parameters(timeout_min=10)
    seeds = list(range(1, args.trials + 1))
    jobs = executor.map_array(trial, seeds, [args.dir] * len(seeds))
    results = [job.result() for job in jobs]
    assert len(results) == args.trials


if __name__ == "__main__":
    main()
