"""Q-learning improves what a small language model writes: from nothing, pretrain -> evaluate ->
Q-learning -> evaluate, on GraphWalkText-v0 (shortest paths as text) and WordGen-v0 (words).

For every environment and seed: pretrain a TransformerLM on generated data (jrl.text.pretrain),
score uniformly random tokens, the pretraining data itself (walks) and the pretrained model, run
soft Q-learning from it (jrl.text.q_learning, its default config), and score the result; sampled
at temperature 1 and greedily, 1,000 episodes each. Writes to --out:

- results.csv / results.json: one row per (env, seed, model, decoding): mean return, optimality
  (walks, averaged over start nodes) or valid-word rate (words), distinct texts and distinct valid
  words, and KL(pi || pi0) per generation;
- samples.jsonl: 1,000 temperature-1 generations per model (random, pretrained, q_learning; seed 0)
  and environment, {"env", "model", "prompt", "text"} a line, to score independently;
- text_q_learning.png (with the plot extra): the headline metric per model;
- <env>/seed-<n>/pretrained/: the pretrained model (model.safetensors + config.json).

    python3 experiments/text_q_learning.py --seeds 3     # into experiments/text_q_learning/results/
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import jax
import numpy as np

import jrl
from jrl.text import pretrain, save_model
from jrl.text import q_learning as text_q
from jrl.text.metrics import sample_episodes, score_episodes
from jrl.text.pretrain import data_batch, default_pretrain_config

ENVS = ("GraphWalkText-v0", "WordGen-v0")
EPISODES = 1000
COLUMNS = (
    "env",
    "seed",
    "model",
    "decoding",
    "mean_return",
    "optimality",
    "valid_rate",
    "distinct_texts",
    "distinct_valid_words",
    "kl",
)


def data_scores(key: jax.Array, env, env_params) -> dict:
    """The pretraining data's own optimality (walks): ILQL's random-walk baseline."""
    from jrl.envs.graph_walk_text import walk_optimality

    tokens, _ = data_batch(key, env, env_params, EPISODES)
    optimality = np.asarray(jax.vmap(walk_optimality, in_axes=(0, None))(tokens, env_params))
    starts = np.asarray(tokens[:, 0])
    per_start = [optimality[starts == s].mean() for s in np.unique(starts)]
    texts = env.vocabulary.decode_batch(np.asarray(tokens))
    return {"optimality": float(np.mean(per_start)), "distinct_texts": len(set(texts))}


def prompt_of(env_id: str, text: str) -> str:
    """The prompt part of a decoded episode: the start node of a walk; WordGen here is unprompted."""
    return text.split(" ")[0] if env_id == "GraphWalkText-v0" else ""


def run_env(
    env_id: str, seeds: list[int], out: Path, samples: list[dict], pretrain_steps: int | None, q_steps: int | None
) -> list[dict]:
    env, env_params = jrl.make(env_id)
    rows = []
    for seed in seeds:
        key = jax.random.key(seed)
        k_pre, k_q, k_eval = jax.random.split(key, 3)
        pre_config = default_pretrain_config(env_id)
        if pretrain_steps is not None:
            pre_config = pre_config.replace(num_steps=pretrain_steps)
        start = time.perf_counter()
        model, losses = pretrain(k_pre, env, env_params, pre_config)
        pre_seconds = time.perf_counter() - start
        save_model(
            out / env_id / f"seed-{seed}" / "pretrained",
            model,
            {"env": env_id, "seed": seed, "pretrain_config": pre_config.to_dict(), "final_loss": float(losses[-1])},
        )
        config = text_q.default_config(env_id)
        if q_steps is not None:
            config = config.replace(num_steps=q_steps)
        start = time.perf_counter()
        result = jax.block_until_ready(jax.jit(text_q.make_train(config, env, env_params, model=model))(k_q))
        q_seconds = time.perf_counter() - start
        text_q.check_finite(result)
        print(
            f"{env_id} seed {seed}: pretrained in {pre_seconds:.1f} s (loss {losses[-1]:.3f}), Q-learning {config.num_steps} iterations in {q_seconds:.1f} s"
        )
        models = {
            "random": {"model": None},
            "pretrained": {"model": model},
            "q_learning": {"model": model, "q_model": result.q_model, "beta": config.beta},
        }
        if env_id == "GraphWalkText-v0":
            rows.append(
                {
                    "env": env_id,
                    "seed": seed,
                    "model": "data",
                    "decoding": "sample",
                    **data_scores(k_eval, env, env_params),
                }
            )
        for name, decoder in models.items():
            for decoding in ("temperature 1", "greedy"):
                if name == "random" and decoding == "greedy":
                    continue  # argmax of equal scores: always token 0, not a baseline
                episodes = sample_episodes(
                    k_eval, env, env_params, num_episodes=EPISODES, do_sample=decoding != "greedy", **decoder
                )
                scores = score_episodes(env, env_params, episodes)
                row = {"env": env_id, "seed": seed, "model": name, "decoding": decoding}
                row.update({k: scores[k] for k in COLUMNS if k in scores})
                rows.append(row)
                if seed == seeds[0] and decoding == "temperature 1":
                    samples.extend(
                        {"env": env_id, "model": name, "prompt": prompt_of(env_id, t), "text": t}
                        for t in scores["texts"]
                    )
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    """Mean (and the per-seed minimum) of each metric over seeds, per env, model and decoding."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["env"], row["model"], row["decoding"]), []).append(row)
    table = []
    for (env_id, model, decoding), members in groups.items():
        entry = {"env": env_id, "model": model, "decoding": decoding, "seeds": len(members)}
        for column in COLUMNS[4:]:
            values = [m[column] for m in members if column in m]
            if values:
                entry[column] = float(np.mean(values))
                entry[f"{column}_min"] = float(np.min(values))
        table.append(entry)
    return table


def plot(table: list[dict], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[plot]'): no figure")
        return
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, (env_id, metric) in zip(
        axes, (("GraphWalkText-v0", "optimality"), ("WordGen-v0", "valid_rate")), strict=True
    ):
        entries = [e for e in table if e["env"] == env_id and metric in e]
        labels = [f"{e['model']}\n{e['decoding'].replace('temperature 1', 'T=1')}" for e in entries]
        ax.bar(range(len(entries)), [e[metric] for e in entries], color="tab:blue")
        for i, e in enumerate(entries):  # what the bar alone hides: diversity and distance to pi0
            note = (
                f"{e['distinct_valid_words']:.0f} words"
                if "distinct_valid_words" in e
                else f"{e['distinct_texts']:.0f} texts"
            )
            if "kl" in e:
                note += f"\nKL {max(e['kl'], 0.0):.2f}"
            ax.text(i, e[metric] + 0.02, note, ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(entries)), labels, fontsize=7)
        ax.set_ylim(0, 1.25)
        ax.axhline(0.95 if metric == "optimality" else 0.9, color="k", lw=0.8, ls="--")
        name = "optimality (mean over start nodes)" if metric == "optimality" else "valid-word rate"
        ax.set_title(f"{env_id}: {name}, mean of {entries[0]['seeds']} seeds", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def fmt(entry: dict, name: str, width: int, digits: int = 3) -> str:
    return f"{entry[name]:>{width}.{digits}f}" if name in entry else f"{'':>{width}}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("experiments/text_q_learning/results"))
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    parser.add_argument("--envs", nargs="+", default=list(ENVS), choices=ENVS)
    parser.add_argument("--pretrain-steps", type=int, default=None, help="override the pretraining steps")
    parser.add_argument("--q-steps", type=int, default=None, help="override the Q-learning iterations")
    parser.add_argument("--plot-only", action="store_true", help="redraw the figure from --out's results.json")
    args = parser.parse_args()
    if args.plot_only:
        plot(json.loads((args.out / "results.json").read_text())["summary"], args.out / "text_q_learning.png")
        return
    if args.seeds < 1:
        parser.error("--seeds must be >= 1")
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows, samples = [], []
    for env_id in args.envs:
        rows += run_env(env_id, list(range(args.seeds)), args.out, samples, args.pretrain_steps, args.q_steps)
    table = summarise(rows)
    (args.out / "results.json").write_text(json.dumps({"rows": rows, "summary": table}, indent=1) + "\n")
    with (args.out / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["env", "seed", "model", "decoding", *COLUMNS[4:]])
        writer.writeheader()
        writer.writerows(rows)
    with (args.out / "samples.jsonl").open("w") as f:
        for sample in samples:
            f.write(json.dumps(sample) + "\n")
    plot(table, args.out / "text_q_learning.png")
    print(
        f"\n{'env':<18} {'model':<11} {'decoding':<14} {'return':>7} {'optimal':>8} {'valid':>6} {'distinct':>8} {'words':>6} {'KL':>6}"
    )
    for e in table:
        print(
            f"{e['env']:<18} {e['model']:<11} {e['decoding']:<14} {fmt(e, 'mean_return', 7, 2)} {fmt(e, 'optimality', 8)} "
            f"{fmt(e, 'valid_rate', 6)} {fmt(e, 'distinct_texts', 8, 0)} {fmt(e, 'distinct_valid_words', 6, 0)} {fmt(e, 'kl', 6, 2)}"
        )
    print(
        f"\n{len(args.envs)} environment(s) x {args.seeds} seed(s) in {time.perf_counter() - start:.0f} s; wrote {args.out}"
    )


if __name__ == "__main__":
    main()
