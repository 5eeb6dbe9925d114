"""A Hydra application running the toy trial, one job per `seed`: `python hydra_app.py -m seed=range(1,N+1)
hydra.sweep.dir=DIR [hydra/launcher=joblib]`. Each job writes into its own output dir, as Hydra sets it up."""

from __future__ import annotations

from dataclasses import dataclass

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from toy_work import toy_work


@dataclass
class TrialConfig:
    stale: int = 1
    seed: int = 1


ConfigStore.instance().store(name="trial", node=TrialConfig)


@hydra.main(version_base="1.3", config_path=None, config_name="trial")
def main(cfg: TrialConfig) -> float:
    return toy_work(cfg.stale, cfg.seed, HydraConfig.get().runtime.output_dir)


if __name__ == "__main__":
    main()
