"""The ray backend against a real `ray start --head` on 127.0.0.1 (integration), plus its config (fast)."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf
from services import corrupt_config, final_metrics, make_sweep, process_gone, run_directly, wait_for_states
from tiny_trail import TINY

from harness.spec.compose import compose_trail
from harness.store.rundir import read_status


def test_ray_config_keys_compose() -> None:
    cfg = compose_trail(["backend=ray", "backend.address=127.0.0.1:6379", "backend.num_cpus_per_trail=2",
                         "backend.num_gpus_per_trail=1", "backend.auth_mode=disabled"]).backend
    assert (cfg.address, cfg.num_cpus_per_trail, cfg.num_gpus_per_trail, cfg.auth_mode) == \
        ("127.0.0.1:6379", 2.0, 1.0, "disabled")


def test_forwarded_env_carries_harness_settings_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.backends.ray_backend import forwarded_env

    monkeypatch.setenv("HARNESS_CACHE_DIR", "/x")
    monkeypatch.setenv("UNRELATED_SECRET", "y")
    env = forwarded_env()
    assert env["HARNESS_CACHE_DIR"] == "/x" and "UNRELATED_SECRET" not in env


def _backend(run_dirs):
    from harness.backends.ray_backend import RayBackend

    return RayBackend(OmegaConf.load(run_dirs[0] / "config.yaml").backend)


@pytest.mark.integration
@pytest.mark.ray
@pytest.mark.timeout(600)
def test_ray_cluster_runs_trails_and_isolates_a_failing_one(ray_head: str, tmp_path: Path) -> None:
    import ray

    run_dirs = make_sweep(tmp_path / "sweep", [["stale=1"], ["stale=2"], ["stale=4"]],
                          common=[*TINY, "backend=ray", f"backend.address={ray_head}", "backend.auth_mode=disabled"])
    corrupt_config(run_dirs[2])  # the task itself raises: the backend, not the runner, must record the failure
    backend = _backend(run_dirs)
    try:
        assert ray.cluster_resources().get("CPU") == 2.0  # the head started by the test, not a private one
        handles = backend.submit(run_dirs)
        states = wait_for_states(backend.poll, handles)
    finally:
        backend.close()
    assert states == ["done", "done", "failed"], [read_status(d) for d in run_dirs]
    assert read_status(run_dirs[2])["reason"].startswith("ray: ")
    for run_dir in run_dirs[:2]:
        assert read_status(run_dir)["host"] and final_metrics(run_dir)
    assert not ray.is_initialized()
    direct = run_directly(run_dirs[0], tmp_path / "direct")
    assert final_metrics(direct) == final_metrics(run_dirs[0])


@pytest.mark.integration
@pytest.mark.ray
@pytest.mark.timeout(600)
def test_ray_cancel_running_trail(ray_head: str, tmp_path: Path) -> None:
    run_dirs = make_sweep(tmp_path / "sweep", [["engine.steps=100000"]],
                          common=[*TINY, "backend=ray", f"backend.address={ray_head}", "backend.auth_mode=disabled"])
    backend = _backend(run_dirs)
    try:
        (handle,) = backend.submit(run_dirs)
        wait_for_states(backend.poll, [handle], until=("running",), timeout=180)
        pid = read_status(run_dirs[0])["pid"]
        backend.cancel(handle)
        assert wait_for_states(backend.poll, [handle], timeout=60) == ["cancelled"]
    finally:
        backend.close()
    assert read_status(run_dirs[0])["state"] == "cancelled"
    assert process_gone(pid, 10.0), "force-cancel must kill the worker running the trail"



@pytest.mark.integration
@pytest.mark.ray
@pytest.mark.timeout(600)
def test_ray_local_head_started_and_shut_down(tmp_path: Path) -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()
    run_dirs = make_sweep(tmp_path / "sweep", [["stale=1"]],
                          common=[*TINY, "backend=ray", "backend.num_cpus=1", "backend.object_store_memory=80000000"])
    backend = _backend(run_dirs)
    assert ray.is_initialized() and ray.cluster_resources().get("CPU") == 1.0
    handles = backend.submit(run_dirs)
    assert wait_for_states(backend.poll, handles) == ["done"]
    backend.close()
    assert not ray.is_initialized()


@pytest.mark.integration
@pytest.mark.ray
@pytest.mark.timeout(600)
def test_ray_trails_spread_over_two_nodes_and_each_records_its_node(ray_two_nodes: str, tmp_path: Path) -> None:
    import ray

    run_dirs = make_sweep(tmp_path / "sweep", [[f"stale={i}"] for i in range(4)],
                          common=[*TINY, "backend=ray", f"backend.address={ray_two_nodes}",
                                  "backend.auth_mode=disabled"])
    backend = _backend(run_dirs)
    try:
        nodes = {n["NodeID"]: n["Resources"] for n in ray.nodes() if n["Alive"]}
        assert len(nodes) == 2 and sum(r.get("CPU", 0) for r in nodes.values()) == 2.0, nodes
        handles = backend.submit(run_dirs)  # one CPU per trail, one per node: two run at once, one on each node
        assert wait_for_states(backend.poll, handles, timeout=400) == ["done"] * 4, [read_status(d) for d in run_dirs]
    finally:
        backend.close()
    placed = [read_status(d)["node"] for d in run_dirs]
    assert set(placed) == set(nodes), f"trails ran on {placed}, the cluster's nodes are {sorted(nodes)}"
    (second,) = [node for node, resources in nodes.items() if "node2" in resources]
    assert second in placed
