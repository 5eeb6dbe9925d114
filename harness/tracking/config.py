"""Schema of experiment tracking (tracking=mlflow|none)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrackingConfig:
    enabled: bool = True
    uri: str = "sqlite:///mlflow.db"
    experiment: str = "harness"
    sync_every_s: float = 5.0
