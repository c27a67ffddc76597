"""The docs cannot drift from the code: every Python block of README.md and docs/ runs, and every
list of environments or tuned defaults the docs give equals what the registry and the defaults hold."""

from __future__ import annotations

import contextlib
import fnmatch
import io
import re
import sys
import types
from pathlib import Path

import pytest

import jrl
from jrl.algorithms import dqn, q_learning
from jrl.envs import TabularEnv, registry

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
ID = r"`([A-Za-z0-9*/_.:-]+-v\d+)`"


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", path.read_text(), flags=re.S | re.M)


def read(name: str) -> str:
    return (ROOT / name).read_text()


def tabular_ids() -> set[str]:
    return {env_id for env_id in jrl.registered_envs() if isinstance(jrl.make(env_id)[0], TabularEnv)}


@pytest.mark.parametrize("path", [p for p in DOC_FILES if python_blocks(p)], ids=lambda p: p.name)
def test_every_python_block_runs(path, monkeypatch, tmp_path):
    """The blocks of one file run in order in one module (later blocks may use earlier names; a
    real module, so dataclasses defined in a block work), from a scratch directory, with the
    environment registry restored afterwards."""
    monkeypatch.chdir(tmp_path)
    registered = dict(registry._REGISTRY)
    module = types.ModuleType(f"docs_{path.stem}")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    try:
        for index, block in enumerate(python_blocks(path)):
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile(block, f"{path.name}, python block {index}", "exec"), module.__dict__)
    finally:
        registry._REGISTRY.clear()
        registry._REGISTRY.update(registered)


def test_readme_lists_every_registered_environment():
    row = next(line for line in read("README.md").splitlines() if line.startswith("| `jrl.make`"))
    documented = re.findall(ID, row)
    covered = {env_id for pattern in documented for env_id in jrl.registered_envs() if fnmatch.fnmatch(env_id, pattern)}
    assert covered == set(jrl.registered_envs())
    assert all(any(fnmatch.fnmatch(e, p) for e in jrl.registered_envs()) for p in documented), documented


def test_environments_page_prints_the_registry():
    text = read("docs/environments.md")
    printed = re.search(r"print\(jrl.registered_envs\(\)\)\n((?:# .*\n)+)", text).group(1)
    assert re.findall(r"'([^']+)'", printed) == jrl.registered_envs()


def test_tabular_lists_are_the_tabular_environments():
    table = read("docs/tabular.md").split("## The environments")[1].split("\n\n")[1]
    assert set(re.findall(r"^\| " + ID, table, flags=re.M)) == tabular_ids()
    needs = read("docs/q_learning.md").split("It needs a tabular environment")[1].split(")")[0]
    assert set(re.findall(ID, needs)) == tabular_ids()
    assert set(q_learning._DEFAULTS) == tabular_ids()


def test_q_learning_defaults_table_is_default_config():
    text = read("docs/q_learning.md").split("## Tuned defaults")[1]
    rows = re.findall(r"^\| `([^`]+)` \| (\d+) x (\d+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|", text, flags=re.M)
    assert {row[0] for row in rows} == set(q_learning._DEFAULTS)
    for env_id, num_envs, num_steps, gamma, alpha, epsilon_end in rows:
        config = q_learning.default_config(env_id)
        assert (config.num_envs, config.num_steps) == (int(num_envs), int(num_steps)), env_id
        assert (config.gamma, config.alpha, config.epsilon_end) == (float(gamma), float(alpha), float(epsilon_end))


def test_dqn_pages_name_every_tuned_default():
    text = read("docs/dqn.md")
    intro = text.split("has tuned\nsettings for")[1].split("environments")[0]
    named = set(re.findall(ID, intro))
    probes = {env_id for env_id in dqn._DEFAULTS if env_id.startswith("Probe-")}
    assert "the probe" in intro and named | probes == set(dqn._DEFAULTS)
    table = text.split("| environment | default = candidate |")[1].split("\n\n")[0]
    assert set(re.findall(r"^\| " + ID, table, flags=re.M)) == named


def test_classic_control_time_limits_in_the_docs_are_the_registry_s():
    text = read("docs/environments.md")
    sentence = re.search(
        r"`CartPole-v1`, `Acrobot-v1` \(RK4 integrator\) and `MountainCar-v0`.*?\((\d+), (\d+), (\d+)\)", text, re.S
    )
    limits = [
        int(jrl.make(env_id)[1].max_steps_in_episode) for env_id in ("CartPole-v1", "Acrobot-v1", "MountainCar-v0")
    ]
    assert [int(x) for x in sentence.groups()] == limits
