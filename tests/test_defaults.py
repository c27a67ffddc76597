"""The tuned Q-learning defaults, on seeds nobody tuned on (docs/q_learning.md, "Tuned defaults").

Each default is the choice of its tuning sweep (``experiments/tune_defaults``), and retrained here
on the 32 held-out seeds it is scored as the docs say: how many seeds end within 5% of the optimal
return, and their mean.
"""

from __future__ import annotations

import csv
import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

import jrl
from jrl.algorithms import q_learning

ROOT = Path(__file__).resolve().parents[1]
TUNE = ROOT / "experiments" / "tune_defaults"


def _load_tuner():
    spec = importlib.util.spec_from_file_location("tune_q_learning", TUNE / "tune_q_learning.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tuner = _load_tuner()


def documented_rows() -> dict[str, dict]:
    """The held-out columns of the docs' table: env -> V*, held-out mean and successes."""
    rows = {}
    for line in (ROOT / "docs" / "q_learning.md").read_text().splitlines():
        match = re.match(r"\| `([^`]+)` \|(.*)\| (\d+)/32 \|$", line)
        if match:
            cells = [c.strip() for c in match.group(2).split("|")]
            rows[match.group(1)] = {"v_star": float(cells[4]), "mean": float(cells[6]), "successes": int(match[3])}
    return rows


TUNED = sorted(p.stem for p in (TUNE / "q_learning").glob("*.toml"))


def test_every_swept_default_has_a_spec_a_tuning_table_and_a_documented_row():
    assert set(TUNED) == set(q_learning.tuned_env_ids()) - {"MaximizationBias-v0"}
    assert set(documented_rows()) == set(TUNED)


@pytest.mark.parametrize("env_id", TUNED)
def test_default_is_the_tuning_sweeps_choice(env_id):
    # The recorded tuning table, read back, chooses the default (the rule is the tuner's own).
    with open(TUNE / "results" / "q_learning" / env_id / "tuning" / "results.csv") as f:
        rows = [
            {k: float(v) if k in ("alpha", "epsilon_end", "final_return_mean", "auc_mean") else v for k, v in r.items()}
            for r in csv.DictReader(f)
        ]
    assert len(rows) == 12
    chosen = tuner.choose(rows, tuner.optimal_return(env_id))
    default = q_learning.default_config(env_id)
    assert (default.alpha, default.epsilon_end) == (chosen["alpha"], chosen["epsilon_end"])


@pytest.mark.slow
def test_defaults_on_held_out_seeds_match_the_docs():
    documented = documented_rows()
    for env_id in TUNED:
        default = q_learning.default_config(env_id)
        result = jrl.sweep(
            "q_learning",
            env_id,
            default,
            grid={"alpha": [default.alpha]},
            seeds=tuner.HELD_OUT_SEEDS,
            progress=False,
        )
        returns = result.final_returns[0]
        v_star = tuner.optimal_return(env_id)
        successes = int(np.sum(v_star - returns <= tuner.SUCCESS * abs(v_star)))
        doc = documented[env_id]
        assert v_star == pytest.approx(doc["v_star"], abs=1e-4), env_id
        # Same platform, same bits; a different CPU may round a seed or two differently.
        assert successes >= doc["successes"] - 1, (env_id, successes, doc)
        assert returns.mean() == pytest.approx(doc["mean"], abs=0.01 * abs(v_star)), env_id
