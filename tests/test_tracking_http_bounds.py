"""MLflow's HTTP bounds follow the client being made, except where the user exported their own."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from harness.tracking.client import configure_http

KEYS = ("MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_MAX_RETRIES", "HARNESS_MLFLOW_HTTP_WRITTEN")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for key in KEYS:
        monkeypatch.delenv(key, raising=False)


def test_a_later_client_gets_its_own_timeout_not_an_earlier_ones():
    configure_http(timeout_s=2, retries=0)
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "2"
    configure_http(timeout_s=10, retries=1)
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "10"
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "1"


def test_a_value_the_user_exported_always_wins(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "33")
    configure_http(timeout_s=2, retries=0)
    configure_http(timeout_s=5, retries=0)
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "33"
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"


def test_a_child_process_tells_the_harness_values_from_the_users():
    configure_http(timeout_s=2, retries=0)
    code = ("import os; from harness.tracking.client import configure_http; configure_http(7, 1); "
            "print(os.environ['MLFLOW_HTTP_REQUEST_TIMEOUT'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "7"
