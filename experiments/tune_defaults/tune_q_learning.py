"""How ``q_learning.default_config`` is chosen, and how the choice does on seeds nobody tuned on.

For every tabular environment with a tuned default, ``q_learning/<env>.toml`` is a sweep spec:
the budget (``num_envs`` x ``num_steps``) and ``gamma`` fixed, a grid of ``alpha`` x
``epsilon_end``, the tuning seeds 0-7. ``jrl.sweep`` trains the grid in one compiled call and
scores every member by the exact expected return of its final greedy policy within the time
limit (from the model). The choice is the highest mean over the tuning seeds; configurations
within 0.5% of the best (of ``|V*|``, the optimal return within the time limit) tie, and the tie
goes to the largest area under the training curve (the fastest learner).

The chosen configuration is then trained on the held-out seeds 1000-1031, never used to choose,
and every seed is called a success when its greedy return is within 5% of ``|V*|`` of ``V*``.
The sweeps' tables go to ``results/q_learning/<env>/{tuning,heldout}/results.csv`` (and
``.json``); the summary table printed at the end is the one in ``docs/q_learning.md``.

    python experiments/tune_defaults/tune_q_learning.py               # every environment (~4 min on 2 cores)
    python experiments/tune_defaults/tune_q_learning.py --env Taxi-v4
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np

import jrl
from jrl.algorithms import q_learning
from jrl.experiment import SweepSpec, run_sweep
from jrl.planning import finite_horizon_optimal_values

HERE = Path(__file__).parent
HELD_OUT_SEEDS = list(range(1000, 1032))
#: Members within this fraction of |V*| of the best tuning mean tie (broken by learning speed).
TIE = 0.005
#: A held-out seed succeeds when its greedy return is within this fraction of |V*| of V*.
SUCCESS = 0.05


def optimal_return(env_id: str) -> float:
    """V*: the best expected undiscounted return within the time limit, from the model."""
    env, params = jrl.make(env_id)
    mdp = env.mdp(params)
    horizon = min(int(params.max_steps_in_episode), jrl.UNLIMITED_EPISODE_CAP)
    return float(np.asarray(mdp.initial_distribution, np.float64) @ finite_horizon_optimal_values(mdp, horizon))


def choose(rows: list[dict], v_star: float) -> dict:
    """The tuning rule of the module docstring."""
    best = max(r["final_return_mean"] for r in rows)
    tied = [r for r in rows if r["final_return_mean"] >= best - TIE * abs(v_star)]
    return max(tied, key=lambda r: r["auc_mean"])


def fresh(directory: Path) -> Path:
    if directory.exists():
        shutil.rmtree(directory)
    return directory


def tune(env_id: str, out: Path) -> dict:
    spec = SweepSpec.load(HERE / "q_learning" / f"{env_id}.toml")
    v_star = optimal_return(env_id)
    started = time.perf_counter()
    tuning = run_sweep(spec, fresh(out / env_id / "tuning"), progress=False)
    chosen = choose(tuning.rows, v_star)
    point = {name: [chosen[name]] for name in spec.grid}
    held_out_spec = SweepSpec.resolve(
        spec.algo, spec.env, grid=point, seeds=HELD_OUT_SEEDS, config=spec.config, env_kwargs=spec.env_kwargs
    )
    held_out = run_sweep(held_out_spec, fresh(out / env_id / "heldout"), progress=False)
    returns = held_out.final_returns[0]
    successes = int(np.sum(v_star - returns <= SUCCESS * abs(v_star)))
    default = q_learning.default_config(env_id)
    return {
        "env": env_id,
        "alpha": chosen["alpha"],
        "epsilon_end": chosen["epsilon_end"],
        "v_star": v_star,
        "tuning_mean": chosen["final_return_mean"],
        "held_out_mean": float(returns.mean()),
        "held_out_worst": float(returns.min()),
        "held_out_successes": successes,
        "held_out_seeds": len(returns),
        "default_matches": default.alpha == chosen["alpha"] and default.epsilon_end == chosen["epsilon_end"],
        "seconds": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", action="append", help="environment id (repeatable); default: every spec")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "q_learning")
    args = parser.parse_args()
    env_ids = args.env or sorted(p.stem for p in (HERE / "q_learning").glob("*.toml"))
    print(
        "| env id | alpha | epsilon_end | V* | tuning mean (seeds 0-7) | held-out mean | held-out worst "
        "| held-out seeds within 5% of V* | default matches |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for env_id in env_ids:
        r = tune(env_id, args.out)
        print(
            f"| `{r['env']}` | {r['alpha']} | {r['epsilon_end']} | {r['v_star']:.4f} | {r['tuning_mean']:.4f} | "
            f"{r['held_out_mean']:.4f} | {r['held_out_worst']:.4f} | {r['held_out_successes']}/{r['held_out_seeds']} "
            f"| {'yes' if r['default_matches'] else 'NO'} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
