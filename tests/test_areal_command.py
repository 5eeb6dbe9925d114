"""engine=areal command generation: the AReaL page's test trails, naming rules, sizing, pass-through."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.engines.areal.command import build_command, experiment_name, trial_name
from harness.errors import HarnessError
from harness.spec.compose import compose_trail
from harness.store.rundir import load_config

PAGE_TRAILS = [
    (["algo=grpo", "stale=256", "alloc=d2+d1", "rollout=96"], "gsm8k_grpo.yaml", 2, 1, 96, 256),
    (["algo=m2po", "stale=256", "alloc=d2+d1", "rollout=96"], "gsm8k_m2po.yaml", 2, 1, 96, 256),
    (["algo=m2po", "stale=256", "alloc=d1+d2", "rollout=64"], "gsm8k_m2po.yaml", 1, 2, 64, 256),
    (["algo=m2po", "stale=32", "alloc=d1+d2", "rollout=64"], "gsm8k_m2po.yaml", 1, 2, 64, 32),
]


@functools.cache
def _compose(overrides: tuple):
    return compose_trail(["engine=areal", "tracking=none", *overrides])


def _cmd(overrides, run_dir="/runs/areal-page/t1", sweep="areal_m2po_page", label="stale256-d2+d1-rollout96-ab12cd"):
    return build_command(_compose(tuple(overrides)), Path(run_dir), sweep, label, overrides)


@pytest.mark.parametrize("overrides,yaml,x,y,rollout,stale", PAGE_TRAILS)
def test_page_trails_map_to_areal_keys(overrides, yaml, x, y, rollout, stale, tmp_path):
    cmd = _cmd(overrides, run_dir=tmp_path / "run")
    assert cmd.argv[:4] == ["python3", "examples/math/gsm8k_rl.py", "--config", f"examples/math/{yaml}"]
    o = cmd.overrides
    assert f"++rollout.max_head_offpolicyness={stale}" in o
    assert f"++rollout.max_concurrent_rollouts={rollout}" in o
    assert f"++rollout.backend=sglang:d{x}p1t1" in o
    assert f"++actor.backend=fsdp:d{y}p1t1" in o
    assert "++cluster.n_nodes=1" in o and f"++cluster.n_gpus_per_node={x + y}" in o
    assert "++scheduler.type=local" in o and "++seed=1" in o and "++recover.mode=auto" in o
    assert f"++stats_logger.tensorboard.path={(tmp_path / 'run' / 'tensorboard').resolve()}" in o
    assert f"++cluster.fileroot={(tmp_path / 'run' / 'areal').resolve()}" in o
    # the page's yamls already hold the algorithm's eps_clip / m2_threshold: harness defaults are not pushed
    assert not any(k.startswith("++actor.eps_clip") or k.startswith("++actor.m2_threshold") for k in o)
    assert not any(k.startswith("++total_train_steps") for k in o)


def test_names_follow_areal_rules():
    cmd = _cmd(PAGE_TRAILS[0][0])
    assert cmd.experiment_name == "areal-m2po-page" and "_" not in cmd.experiment_name
    assert cmd.trial_name == "stale256_d2_d1_rollout96_ab12cd" and "-" not in cmd.trial_name
    assert f"++experiment_name={cmd.experiment_name}" in cmd.overrides
    assert f"++trial_name={cmd.trial_name}" in cmd.overrides


@given(st.text(min_size=0, max_size=40))
def test_name_rules_hold_for_any_input(text):
    exp, trial = experiment_name(text), trial_name(text)
    assert exp and "_" not in exp and "/" not in exp and " " not in exp
    assert trial and "-" not in trial and "/" not in trial and " " not in trial


def test_backend_becomes_scheduler_type_and_steps_and_seed():
    cmd = _cmd(["backend=slurm", "seed=7", "engine.total_train_steps=300"])
    assert "++scheduler.type=slurm" in cmd.overrides
    assert "++seed=7" in cmd.overrides
    assert "++total_train_steps=300" in cmd.overrides


def test_user_choices_of_eps_clip_and_m2_threshold_pass_through():
    grpo = _cmd(["algo=grpo", "algo.eps_clip=0.3"])
    assert "++actor.eps_clip=0.3" in grpo.overrides
    m2po = _cmd(["algo=m2po", "algo.m2_threshold=0.08"])
    assert "++actor.m2_threshold=0.08" in m2po.overrides
    assert not any(o.startswith("++actor.eps_clip") for o in m2po.overrides)


def test_value_equal_to_the_yaml_is_not_repeated(tmp_path):
    (tmp_path / "examples/math").mkdir(parents=True)
    (tmp_path / "examples/math/gsm8k_grpo.yaml").write_text("actor:\n  eps_clip: 0.3\n")
    cmd = _cmd(["algo=grpo", "algo.eps_clip=0.3", f"engine.areal_path={tmp_path}"])
    assert not any(o.startswith("++actor.eps_clip") for o in cmd.overrides)
    cmd = _cmd(["algo=grpo", "algo.eps_clip=0.25", f"engine.areal_path={tmp_path}"])
    assert "++actor.eps_clip=0.25" in cmd.overrides
    assert cmd.cwd == str(tmp_path.resolve())


def test_user_overrides_come_last_verbatim():
    cmd = _cmd(["engine.overrides=['actor.path=Qwen/Qwen2.5-0.5B-Instruct','++gconfig.max_new_tokens=512']"])
    assert cmd.argv[-2:] == ["actor.path=Qwen/Qwen2.5-0.5B-Instruct", "++gconfig.max_new_tokens=512"]


def test_multi_node_sizing():
    cmd = _cmd(["alloc=d8+d8", "engine.n_nodes=2"])
    assert "++cluster.n_nodes=2" in cmd.overrides and "++cluster.n_gpus_per_node=8" in cmd.overrides


def test_paths_with_spaces_are_quoted_for_hydra(tmp_path):
    cmd = _cmd([], run_dir=tmp_path / "my runs" / "t")
    tb = [o for o in cmd.overrides if o.startswith("++stats_logger.tensorboard.path=")][0]
    assert tb.endswith("'") and "my runs" in tb


@pytest.mark.parametrize("overrides,message", [
    (["algo=is"], "grpo | m2po with engine=areal"),
    (["engine.n_gpus_per_node=8"], "n_nodes × n_gpus_per_node = 3"),
    (["alloc=d2+d1", "engine.n_nodes=2"], "a divisor of the 3 GPUs"),
    (["engine.overrides=[actor.path]"], "key=value"),
    (["engine.total_train_steps=0"], "≥ 1"),
])
def test_invalid_areal_settings_fail_at_composition(overrides, message):
    with pytest.raises(HarnessError, match=message.replace("|", r"\|").replace("×", ".")):
        compose_trail(["engine=areal", *overrides])


def test_shell_form_is_runnable_text():
    cmd = _cmd(PAGE_TRAILS[1][0])
    shell = cmd.shell()
    assert shell.startswith("cd ") and "examples/math/gsm8k_rl.py --config examples/math/gsm8k_m2po.yaml" in shell


def test_run_dir_command_takes_the_user_choices_from_the_trail(tmp_path):
    from harness.engines.areal.command import command_for_run_dir
    from harness.store.rundir import save_config

    overrides = ["algo=grpo", "algo.eps_clip=0.3"]
    save_config(tmp_path, _compose(tuple(overrides)), overrides)
    assert "++actor.eps_clip=0.3" in command_for_run_dir(load_config(tmp_path), tmp_path).overrides


def test_dry_run_prints_each_trails_areal_command_without_areal_installed(tmp_path: Path, capsys) -> None:
    from harness.cli import main

    missing = tmp_path / "no-areal-here"
    assert main(["sweep", "areal_test", f"engine.areal_path={missing}", "engine.python=/nonexistent/python",
                 "--root", str(tmp_path / "runs"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    commands = [line.strip() for line in out.splitlines() if line.strip().startswith(f"cd {missing} && ")]
    assert len(commands) == 4, out
    assert all("/nonexistent/python examples/math/gsm8k_" in c and "++rollout.max_head_offpolicyness=" in c
               for c in commands)
    assert "validation of the trails was skipped" in out and "--preflight" in out
    assert not (tmp_path / "runs").exists(), "a dry run writes nothing"
