"""The recorded learning curves of PQN's and PPO's defaults (``experiments/learning_curves.py``,
``experiments/results/``): complete records (every seed, every evaluation, the final returns), of
environments that still have a tuned default, and the per-environment numbers docs/pqn.md and
docs/ppo.md report are the records' (a rerun that changes them fails here until the docs follow)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from jrl.algorithms import ppo, pqn

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"


def read(name: str) -> list[dict]:
    with (RESULTS / name).open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("algo, module", [("pqn", pqn), ("ppo", ppo)])
def test_recorded_curves_are_complete_and_the_docs_report_them(algo, module):
    curves, finals = read(f"{algo}_learning_curves.csv"), read(f"{algo}_final_returns.csv")
    assert (RESULTS / f"{algo}_learning_curves.png").stat().st_size > 10_000
    docs = " ".join((ROOT / "docs" / f"{algo}.md").read_text().split())
    assert f"![{algo.upper()} learning curves](../experiments/results/{algo}_learning_curves.png)" in docs
    env_ids = list(dict.fromkeys(row["env_id"] for row in finals))
    assert env_ids and set(env_ids) <= set(module.tuned_env_ids())
    for env_id in env_ids:
        config = module.default_config(env_id)
        rows = [row for row in curves if row["env_id"] == env_id]
        seeds = sorted({int(row["seed"]) for row in rows})
        assert seeds == [0, 1, 2, 3, 4], env_id
        steps = sorted({int(row["env_steps"]) for row in rows})
        assert len(rows) == len(seeds) * len(steps) and len(steps) >= 40  # --records 40
        assert steps[-1] == config.num_steps * config.env_steps_per_iteration()  # the default's whole budget
        # A seed's evaluations are numbers until it stops (stop_return), and NaN after.
        for seed in seeds:
            returns = [
                float(r["eval_return"])
                for r in sorted(rows, key=lambda r: int(r["env_steps"]))
                if int(r["seed"]) == seed
            ]
            recorded = [not math.isnan(x) for x in returns]
            assert recorded[0] and recorded == sorted(recorded, reverse=True), (env_id, seed)
            assert config.stop_return is not None or all(recorded), (env_id, seed)
        returns = np.array([float(r["final_return_100_episodes"]) for r in finals if r["env_id"] == env_id])
        assert [int(r["seed"]) for r in finals if r["env_id"] == env_id] == seeds
        assert all(r["nonfinite_updates"] == "0" for r in finals if r["env_id"] == env_id)
        reported = ", ".join(f"{x:.1f}" for x in returns) + f" (mean {returns.mean():.1f})"
        assert f"returns over 100 episodes: {reported}" in docs, (env_id, reported)
