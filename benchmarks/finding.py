"""Summarise the finding sweep (sweeps/finding.yaml) from its trail journals into reports/finding_table.md.

    harness sweep finding                                # the 50 trails (runs/finding/)
    python benchmarks/finding.py [runs/finding]           # the table, per (stale, algo), mean over seeds

Final eval reward is the greedy accuracy at the last step; "last-3" averages the last three evaluations (less noise).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from harness.journal import read_records
from harness.rundir import load_config, read_status
from harness.states import FINISHED

OUT = Path(__file__).resolve().parent.parent / "reports" / "finding_table.md"


def trail_row(run_dir: Path) -> dict:
    cfg = load_config(run_dir)
    recs = read_records(run_dir)
    df = pd.DataFrame(recs)
    evals = df.dropna(subset=["eval/reward"]) if "eval/reward" in df else df.iloc[0:0]
    return {
        "stale": int(cfg.stale), "algo": f"{cfg.algo.name}/{cfg.algo.variant}", "seed": int(cfg.seed),
        "state": read_status(run_dir).get("state"), "steps": int(df["step"].max()) if len(df) else 0,
        "final_eval": float(evals["eval/reward"].iloc[-1]) if len(evals) else float("nan"),
        "last3_eval": float(evals["eval/reward"].iloc[-3:].mean()) if len(evals) else float("nan"),
        "final_eval_sampled": float(evals["eval/reward_sampled"].iloc[-1]) if len(evals) else float("nan"),
        "rollout_reward_last50": float(df["rollout/reward"].iloc[-50:].mean()),
        "grad_norm_mean": float(df["train/grad_norm"].mean()), "grad_norm_max": float(df["train/grad_norm"].max()),
        "clip_frac_mean": float(df["train/clip_frac"].mean()), "masked_frac_mean": float(df["m2po/masked_frac"].mean()),
        "m2_before_mean": float(df["m2po/m2_before"].mean()), "staleness_mean": float(df["staleness/mean"].mean()),
        "sec_per_step": float(df["perf/sec_per_step"].median()),
    }


def main(argv: list[str]) -> int:
    sweep_dir = Path(argv[0] if argv else "runs/finding")
    rows = [trail_row(d) for d in sorted(sweep_dir.iterdir()) if (d / "journal.jsonl").exists()
            and read_records(d)]
    df = pd.DataFrame(rows)
    unfinished = df[~df.state.isin(FINISHED)]
    df = df[df.state.isin(FINISHED)]
    per_trail = df.sort_values(["algo", "stale", "seed"])
    agg = df.groupby(["algo", "stale"]).agg(
        seeds=("seed", "count"), final_eval=("final_eval", "mean"), final_eval_sd=("final_eval", "std"),
        last3_eval=("last3_eval", "mean"), final_eval_sampled=("final_eval_sampled", "mean"),
        grad_norm_mean=("grad_norm_mean", "mean"), grad_norm_max=("grad_norm_max", "max"),
        clip_frac=("clip_frac_mean", "mean"), masked_frac=("masked_frac_mean", "mean"),
        staleness=("staleness_mean", "mean")).reset_index()
    ratios = []
    for algo, sub in agg.groupby("algo"):
        base = sub[sub.stale == sub.stale.min()]["final_eval"].iloc[0]
        for _, r in sub.iterrows():
            ratios.append({"algo": algo, "stale": r.stale, "final_eval / stale-min": r.final_eval / base})
    text = ["# Finding sweep: summary over seeds", "", agg.to_markdown(index=False, floatfmt=".4f"), "",
            "## Ratio to the lowest staleness", "", pd.DataFrame(ratios).to_markdown(index=False, floatfmt=".3f"),
            "", "## Per trail", "", per_trail.to_markdown(index=False, floatfmt=".4f"), "",
            f"Unfinished trails left out: {len(unfinished)}", ""]
    OUT.write_text("\n".join(text))
    print("\n".join(text))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
