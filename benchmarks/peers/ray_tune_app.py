"""Ray Tune running the toy trial, one trial per seed on a local Ray with 2 CPUs (one CPU a trial, so two at once):
`python ray_tune_app.py N DIR [--reuse-actors]`. Everything else is Tune's default (its loggers, checkpointing and
result files under DIR); the console output is turned down so a terminal does not slow it."""

from __future__ import annotations

import argparse
import os

from toy_work import toy_work


def trial(config: dict) -> None:
    from ray import tune

    reward = toy_work(1, config["seed"], os.path.join(tune.get_context().get_trial_dir(), "work"))
    tune.report({"eval/reward": reward})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("trials", type=int)
    parser.add_argument("dir")
    parser.add_argument("--reuse-actors", action="store_true")
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args()
    import ray
    from ray import tune

    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    tuner = tune.Tuner(trial, param_space={"seed": tune.grid_search(list(range(1, args.trials + 1)))},
                       tune_config=tune.TuneConfig(reuse_actors=args.reuse_actors),
                       run_config=tune.RunConfig(storage_path=os.path.abspath(args.dir), name="toy", verbose=0))
    results = tuner.fit()
    assert len(results) == args.trials and not results.errors, results.errors
    ray.shutdown()


if __name__ == "__main__":
    main()
