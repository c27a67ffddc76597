"""PQN on MinAtar Breakout through the gymnax interop: jrl's PQN and purejaxql's ``pqn_minatar.py``
at the same budget, seeds and settings, measured here (docs/pqn.md, "MinAtar: a published curve").

Both train on ``Breakout-MinAtar`` (gymnax 1.0.1; jrl reaches it as ``jrl.make("gymnax/Breakout-
MinAtar")``) with purejaxql's ``config/alg/pqn_minatar.yaml``: 128 environments x 32 steps per
iteration, 2 epochs of 32 minibatches, lr 5e-4 decayed linearly, lambda 0.65, gamma 0.99, epsilon
1 -> 0.05 over the first 10% of ``TOTAL_TIMESTEPS_DECAY`` = 1e7 steps, gradient norm clipped at 10.
The budget is shorter than that yaml's 1e7 steps; both keep the 1e7-step schedules (purejaxql's
``TOTAL_TIMESTEPS_DECAY``, jrl's ``schedule_iterations``), as the yaml intends for short tests.
The seeds are vmapped in one compiled function, as purejaxql's ``single_run`` does.

purejaxql's script runs from its checkout unchanged, with the shims of ``benchmarks/peers.py``
(gymnax 1.x's six-value ``step`` folded into the five values it unpacks; wandb, hydra and
omegaconf stubbed). Outputs, under ``experiments/results/``:

- ``pqn_minatar.csv``: one row per library, seed and log point (every 5% of the run): ``library``,
  ``seed``, ``iteration``, ``env_steps`` (MinAtar has no frame skip: one step is one frame),
  ``train_return`` (epsilon-greedy training episodes) and ``greedy_return`` (greedy evaluation);
- ``pqn_minatar.json``: the budget, both configs and the wall-clock times;
- ``pqn_minatar.png``: both curves against environment steps.

    python experiments/pqn_minatar.py --purejaxql /tmp/purejaxql/purejaxql/pqn_minatar.py
    python experiments/pqn_minatar.py --only jrl          # one library at a time (then --only plot)
    python experiments/pqn_minatar.py --quick ...          # a smoke run of the script: NOT results
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import jax
import numpy as np

import jrl
from jrl.algorithms import pqn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # the peers' shims (benchmarks/peers.py)

RESULTS = ROOT / "experiments" / "results"
CSV_PATH = RESULTS / "pqn_minatar.csv"
JSON_PATH = RESULTS / "pqn_minatar.json"
PNG_PATH = RESULTS / "pqn_minatar.png"
COLUMNS = ("library", "seed", "iteration", "env_steps", "train_return", "greedy_return")
LIBRARIES = ("jrl", "purejaxql")

GAME = "Breakout-MinAtar"
SEED = 0  # both split jax.random.PRNGKey(SEED) into one key per seed
NUM_SEEDS = 3
ITERATIONS = 480  # 480 * 128 * 32 = 1,966,080 environment steps per seed
RECORDS = 20  # purejaxql evaluates every TEST_INTERVAL = 5% of its updates
DECAY_STEPS = 10_000_000  # the yaml's TOTAL_TIMESTEPS_DECAY
GREEDY_EPISODES = 64  # jrl's greedy episodes per log point (purejaxql: 128 environments x 1000 steps)

# purejaxql's config/alg/pqn_minatar.yaml, as its single_run sees it (config.yaml merged in).
PUREJAXQL_ALG = dict(
    ALG_NAME="pqn",
    TOTAL_TIMESTEPS_DECAY=float(DECAY_STEPS),
    NUM_ENVS=128,
    NUM_STEPS=32,
    EPS_START=1.0,
    EPS_FINISH=0.05,
    EPS_DECAY=0.1,
    NUM_MINIBATCHES=32,
    NUM_EPOCHS=2,
    NORM_TYPE="layer_norm",
    LR=0.0005,
    MAX_GRAD_NORM=10,
    LR_LINEAR_DECAY=True,
    GAMMA=0.99,
    LAMBDA=0.65,
    ENV_KWARGS={},
    TEST_DURING_TRAINING=True,
    TEST_INTERVAL=0.05,
    TEST_NUM_ENVS=128,
    EPS_TEST=0.0,
    WANDB_MODE="disabled",
    WANDB_LOG_ALL_SEEDS=False,
    HYP_TUNE=False,
)


def jrl_config(iterations: int) -> pqn.PQNConfig:
    """jrl's PQN with the yaml's settings. purejaxql's network (``pqn_minatar.py``'s ``CNN``): one
    3x3 convolution of 16 channels, LayerNorm, ReLU, a dense layer of 128, LayerNorm, ReLU, the
    Q-values: ``conv_features=(16,)``, ``hidden_sizes=(128,)``, ``layer_norm=True`` (its padding,
    initialisation, input scaling and optimizer differ: docs/pqn.md)."""
    per_iteration = PUREJAXQL_ALG["NUM_ENVS"] * PUREJAXQL_ALG["NUM_STEPS"]
    return pqn.PQNConfig(
        num_envs=PUREJAXQL_ALG["NUM_ENVS"],
        num_steps=iterations,
        rollout_length=PUREJAXQL_ALG["NUM_STEPS"],
        num_epochs=PUREJAXQL_ALG["NUM_EPOCHS"],
        num_minibatches=PUREJAXQL_ALG["NUM_MINIBATCHES"],
        learning_rate=PUREJAXQL_ALG["LR"],
        anneal_lr=True,
        max_grad_norm=float(PUREJAXQL_ALG["MAX_GRAD_NORM"]),
        gamma=PUREJAXQL_ALG["GAMMA"],
        lam=PUREJAXQL_ALG["LAMBDA"],
        epsilon_start=PUREJAXQL_ALG["EPS_START"],
        epsilon_end=PUREJAXQL_ALG["EPS_FINISH"],
        epsilon_decay_fraction=PUREJAXQL_ALG["EPS_DECAY"],
        # purejaxql's NUM_UPDATES_DECAY: whole iterations of the 1e7-step schedule (2441)
        schedule_iterations=DECAY_STEPS // per_iteration,
        reward_scale=1.0,
        network="cnn",
        conv_features=(16,),
        hidden_sizes=(128,),
        layer_norm=True,
        eval_episodes=GREEDY_EPISODES,
        log_interval=iterations // RECORDS,
    )


def run_jrl(iterations: int, num_seeds: int) -> tuple[list[dict], float]:
    """Rows of ``COLUMNS`` for jrl, and the wall-clock seconds (compilation included)."""
    env, env_params = jrl.make(f"gymnax/{GAME}")
    config = jrl_config(iterations)
    train = jax.jit(jax.vmap(pqn.make_train(config, env, env_params)))
    keys = jax.random.split(jax.random.PRNGKey(SEED), num_seeds)
    start = time.perf_counter()
    metrics = jax.device_get(jax.block_until_ready(train(keys)).metrics)
    seconds = time.perf_counter() - start
    if not np.all(metrics["finite"]):
        raise SystemExit("jrl: a non-finite gradient step was skipped (check_finite)")
    rows = [
        dict(
            library="jrl",
            seed=seed,
            iteration=int(metrics["step"][seed, i]),
            env_steps=int(metrics["env_steps"][seed, i]),
            train_return=float(metrics["episode_return"][seed, i]),
            greedy_return=float(metrics["eval_return"][seed, i]),
        )
        for seed in range(num_seeds)
        for i in range(metrics["step"].shape[1])
    ]
    return rows, seconds


def load_purejaxql(path: str):
    """purejaxql's ``pqn_minatar.py`` with the shims of ``benchmarks/peers.py``."""
    from peers import five_value_log_wrapper, load_script, stub_modules

    def hydra_main(**kwargs):  # hydra.main(...) decorates its command-line entry point
        return lambda fn: fn

    stub_modules("wandb", "hydra", "omegaconf", hydra={"main": hydra_main}, omegaconf={"OmegaConf": None})
    module = load_script(path, "purejaxql_pqn_minatar")
    module.LogWrapper = five_value_log_wrapper()  # make_train looks the name up when it runs
    return module


def purejaxql_config(iterations: int, num_seeds: int) -> dict:
    per_iteration = PUREJAXQL_ALG["NUM_ENVS"] * PUREJAXQL_ALG["NUM_STEPS"]
    return dict(
        PUREJAXQL_ALG,
        ENV_NAME=GAME,
        TOTAL_TIMESTEPS=float(iterations * per_iteration),
        SEED=SEED,
        NUM_SEEDS=num_seeds,
    )


def run_purejaxql(path: str, iterations: int, num_seeds: int) -> tuple[list[dict], float]:
    """Rows of ``COLUMNS`` for purejaxql (its ``single_run``'s vmapped seeds), and the seconds."""
    module = load_purejaxql(path)
    config = purejaxql_config(iterations, num_seeds)
    interval = iterations // RECORDS
    # its test runs where n_updates % int(NUM_UPDATES * TEST_INTERVAL) == 0
    assert int(iterations * config["TEST_INTERVAL"]) == interval, "iterations must be a multiple of 20"
    train = jax.jit(jax.vmap(module.make_train(dict(config))))
    keys = jax.random.split(jax.random.PRNGKey(SEED), num_seeds)
    start = time.perf_counter()
    metrics = jax.device_get(jax.block_until_ready(train(keys))["metrics"])
    seconds = time.perf_counter() - start
    # returned_episode_returns: per iteration, the mean over its [T, N] steps of each
    # environment's last finished episode's return; averaged here over the interval's iterations.
    train_returns = np.asarray(metrics["returned_episode_returns"]).reshape(num_seeds, RECORDS, interval).mean(-1)
    greedy = np.asarray(metrics["test/returned_episode_returns"])
    rows = []
    for seed in range(num_seeds):
        for i in range(RECORDS):
            last = (i + 1) * interval - 1  # the update whose end ran the test
            rows.append(
                dict(
                    library="purejaxql",
                    seed=seed,
                    iteration=int(metrics["update_steps"][seed, last]),
                    env_steps=int(metrics["env_step"][seed, last]),
                    train_return=float(train_returns[seed, i]),
                    greedy_return=float(greedy[seed, last]),
                )
            )
    return rows, seconds


def read_rows() -> list[dict]:
    if not CSV_PATH.exists():
        return []
    with open(CSV_PATH) as f:
        return list(csv.DictReader(f))


def write_rows(library: str, rows: list[dict]) -> None:
    """Replace ``library``'s rows of the CSV (the other library's stay)."""
    kept = [row for row in read_rows() if row["library"] != library]
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(CSV_PATH, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in kept + rows:
            writer.writerow({k: (f"{row[k]:.4f}" if isinstance(row[k], float) else row[k]) for k in COLUMNS})


def update_record(library: str, entry: dict) -> None:
    record = json.loads(JSON_PATH.read_text()) if JSON_PATH.exists() else {}
    record[library] = entry
    JSON_PATH.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def summary(rows: list[dict]) -> dict[str, dict]:
    """Per library: the last log point's env steps, and the mean over seeds (with min and max) of
    its greedy and training returns; the numbers docs/pqn.md's table shows."""
    out = {}
    for library in LIBRARIES:
        mine = [row for row in rows if row["library"] == library]
        if not mine:
            continue
        last = max(int(row["env_steps"]) for row in mine)
        final = [row for row in mine if int(row["env_steps"]) == last]
        greedy = [float(row["greedy_return"]) for row in final]
        train = [float(row["train_return"]) for row in final]
        out[library] = dict(
            env_steps=last,
            seeds=len(final),
            greedy_mean=float(np.mean(greedy)),
            greedy_min=min(greedy),
            greedy_max=max(greedy),
            train_mean=float(np.mean(train)),
        )
    return out


def plot(rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    colors = {"jrl": "tab:blue", "purejaxql": "tab:orange"}
    for ax, column, title in (
        (axes[0], "greedy_return", "greedy evaluation"),
        (axes[1], "train_return", "training episodes (epsilon-greedy)"),
    ):
        for library in LIBRARIES:
            mine = [row for row in rows if row["library"] == library]
            seeds = sorted({int(row["seed"]) for row in mine})
            curves = []
            for seed in seeds:
                points = sorted((int(r["env_steps"]), float(r[column])) for r in mine if int(r["seed"]) == seed)
                x, y = np.array(points).T
                ax.plot(x, y, color=colors[library], alpha=0.3, linewidth=1)
                curves.append(y)
            if curves:
                ax.plot(
                    x,
                    np.mean(curves, 0),
                    color=colors[library],
                    linewidth=2.2,
                    label=f"{library} (mean of {len(seeds)} seeds)",
                )
        ax.set_title(f"PQN on {GAME}: {title}")
        ax.set_xlabel("environment steps (= frames: MinAtar has no frame skip)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("episode return")
    axes[0].legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(PNG_PATH, dpi=110)
    print(f"wrote {PNG_PATH}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--purejaxql", default="/tmp/purejaxql/purejaxql/pqn_minatar.py", help="purejaxql's pqn_minatar.py"
    )
    parser.add_argument("--only", choices=("jrl", "purejaxql", "plot"), help="run one library (or only redraw)")
    parser.add_argument("--seeds", type=int, default=NUM_SEEDS)
    parser.add_argument("--iterations", type=int, default=ITERATIONS, help="a multiple of 20")
    parser.add_argument("--quick", action="store_true", help="40 iterations, 1 seed, nothing written: NOT results")
    args = parser.parse_args()
    if args.quick:
        args.iterations, args.seeds = 40, 1
    if args.iterations % RECORDS:
        raise SystemExit(f"--iterations must be a multiple of {RECORDS}")
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}, {os.cpu_count()} CPUs")
    for library in LIBRARIES:
        if args.only not in (None, library):
            continue
        if library == "jrl":
            rows, seconds = run_jrl(args.iterations, args.seeds)
            config = {k: v for k, v in jrl_config(args.iterations).to_dict().items()}
        else:
            rows, seconds = run_purejaxql(args.purejaxql, args.iterations, args.seeds)
            config = purejaxql_config(args.iterations, args.seeds)
        final = [r["greedy_return"] for r in rows if r["iteration"] == args.iterations]
        print(f"{library}: {seconds:.0f} s for {args.seeds} seeds; final greedy returns {np.round(final, 2)}")
        if args.quick:
            continue
        write_rows(library, rows)
        update_record(
            library, dict(seconds=round(seconds, 1), seeds=args.seeds, iterations=args.iterations, config=config)
        )
    if not args.quick:
        rows = read_rows()
        print(json.dumps(summary(rows), indent=2))
        plot(rows)


if __name__ == "__main__":
    main()
