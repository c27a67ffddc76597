"""RL for a language model with a verifiable reward, SFT -> GRPO and soft Q-learning -> held-out accuracy.

On Arithmetic-v0 (two-digit addition): supervised fine-tuning, then GRPO and soft Q-learning from
the same model, then accuracy on held-out problems.

The supervised model learns from a sloppy teacher: ``Arithmetic-v0`` with ``mistake="carry"``
writes a share ``--noise`` (0.6) of its solutions with every carry dropped (``58+67=15``), so the
fine-tuned model drops carries in greedy decoding too, while the right answer stays among its
samples. From that model, for every seed:

- **sft**: ``jrl.text.pretrain`` on the teacher's solutions (train problems only);
- **grpo**: ``jrl.text.grpo`` with its default config (reward 1 for the exact answer), the SFT
  model as starting policy and frozen reference;
- **soft_q**: ``jrl.text.q_learning`` with its default config from the same model, decoding with
  ``logits + beta * Q``.

Every model answers the same ``--problems`` held-out problems (drawn from the test split, which no
model trained on) greedily and once at temperature 1; accuracy is recomputed in plain Python from
the text; ``kl`` is ``KL(pi || pi_sft)`` per completion in nats (the sum over its tokens, exact over
the vocabulary), on the temperature-1 completions. Writes to ``--out``:

- ``samples.jsonl``: the first seed's greedy answers, one row per held-out problem and model,
  ``{"env", "model", "prompt", "text"}`` (``text``: prompt plus continuation), to score
  independently (``tests/test_text_rl_record.py`` does);
- ``results.csv`` / ``results.json``: one row per (seed, model, decoding), the summary over seeds,
  the run's settings and timings, and each learner's training curve;
- ``text_rl.png`` (with the plot extra): held-out accuracy per model, and the training curves.

    python3 experiments/text_rl.py --out experiments/text_rl/results    # 522 s here, with other work running
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import re
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jrl
from jrl.envs.arithmetic import is_test_problem
from jrl.text import generate, grpo, pretrain, save_model
from jrl.text import q_learning as text_q
from jrl.text.model import LanguageModel
from jrl.text.pretrain import PretrainConfig

ENV_ID = "Arithmetic-v0"
ENV_KWARGS = {"digits": 2, "ops": "+", "mistake": "carry"}
MODELS = ("sft", "grpo", "soft_q")
GRPO_SETTINGS = {"num_steps": 400}  # changes to grpo.default_config(ENV_ID): chosen on seeds 100-101 (docs)
COLUMNS = ("seed", "model", "decoding", "problems", "accuracy", "well_formed", "kl")


def problems(key: jax.Array, count: int, split: str = "test") -> list[tuple[int, int]]:
    """``count`` distinct problems ``(a, b)`` of two-digit addition from ``split``, drawn from ``key``."""
    a, b = np.divmod(np.arange(100 * 100), 100)
    test = np.asarray(is_test_problem(a, np.zeros_like(a), b))
    pool = np.flatnonzero(test if split == "test" else ~test)
    if count > len(pool):
        raise ValueError(f"--problems {count}: the {split} split has {len(pool)} problems")
    chosen = np.asarray(jax.random.permutation(key, len(pool)))[:count]
    return [(int(a[i]), int(b[i])) for i in pool[np.sort(chosen)]]


def settings_of(pairs: list[str]) -> dict:
    """``["num_steps=400", "beta_kl=0"]`` -> ``{"num_steps": 400, "beta_kl": 0.0}`` (ints and floats)."""
    settings = {}
    for pair in pairs:
        field, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"{pair!r} is not FIELD=VALUE")
        settings[field] = int(value) if re.fullmatch(r"-?\d+", value) else float(value)
    return settings


def answer_of(text: str) -> str:
    """The continuation after ``=`` of a decoded text."""
    return text.partition("=")[2]


def right_answer(prompt: str) -> str:
    """``"37+45="`` -> ``"82"`` in plain Python."""
    a, b = prompt.rstrip("=").split("+")
    return str(int(a) + int(b))


def kl_to_reference(
    model: LanguageModel,
    reference: LanguageModel,
    tokens: np.ndarray,
    prompt_lengths: np.ndarray,
    lengths: np.ndarray,
    q_model: LanguageModel | None = None,
    beta: float = 0.0,
) -> np.ndarray:
    """``KL(pi || pi_ref)`` per completion ``[B]`` in nats: summed over the generated tokens (the end
    token included), exact over the vocabulary; ``pi`` decodes ``logits + beta * Q``."""
    tokens = jnp.asarray(tokens)
    scores = model.apply(tokens)
    if q_model is not None:
        scores = scores + beta * q_model.apply(tokens)
    logp = jax.nn.log_softmax(scores[:, :-1], axis=-1)
    logq = jax.nn.log_softmax(reference.apply(tokens)[:, :-1], axis=-1)
    per_row = jnp.sum(jnp.exp(logp) * (logp - logq), axis=-1)  # [B, L - 1]: row t predicts token t + 1
    t = np.arange(tokens.shape[1] - 1)
    generated = (t[None] >= prompt_lengths[:, None] - 1) & (t[None] <= lengths[:, None] - 1)
    return np.asarray(jnp.sum(jnp.where(generated, per_row, 0.0), axis=1))


def score(texts: list[str], prompts: list[str]) -> dict:
    """Accuracy and the share of well-formed answers, recomputed from the texts."""
    answers = [answer_of(t) for t in texts]
    right = [a == right_answer(p) for a, p in zip(answers, prompts, strict=True)]
    formed = [re.fullmatch(r"-?[1-9]\d*|0", a) is not None for a in answers]
    return {"accuracy": float(np.mean(right)), "well_formed": float(np.mean(formed))}


def curve(metrics: dict) -> dict:
    """A training run's logged reward and KL per record (lists)."""
    return {
        name: np.asarray(metrics[name]).tolist() for name in ("env_steps", "episode_return", "kl") if name in metrics
    }


def run_seed(seed: int, args: argparse.Namespace, prompts: list[str], samples: list[dict]) -> tuple[list, dict]:
    env, train_params = jrl.make(ENV_ID, **ENV_KWARGS)
    k_sft, k_grpo, k_q, k_eval = jax.random.split(jax.random.key(seed), 4)
    timings, curves = {}, {}
    start = time.perf_counter()
    sft_config = PretrainConfig(num_steps=args.sft_steps, word_noise=args.noise)
    sft, losses = pretrain(k_sft, env, train_params, sft_config)
    timings["sft_s"] = time.perf_counter() - start
    save_model(
        args.out / f"seed-{seed}" / "sft",
        sft,
        {"env": ENV_ID, "env_kwargs": ENV_KWARGS, "seed": seed, "pretrain_config": sft_config.to_dict()},
    )

    def learn(name: str, learner: Any, settings: dict, key: jax.Array) -> tuple[Any, Any]:
        """``learner``'s default config with ``settings``, trained from the supervised model."""
        start = time.perf_counter()
        config = learner.default_config(ENV_ID).replace(**settings)
        result = jax.block_until_ready(jax.jit(learner.make_train(config, env, train_params, model=sft))(key))
        learner.check_finite(result)
        timings[f"{name}_s"] = time.perf_counter() - start
        curves[name] = curve(result.metrics)
        return config, result

    _, grpo_result = learn("grpo", grpo, args.grpo, k_grpo)
    decoders = {"sft": {"model": sft}, "grpo": {"model": grpo_result.model}}
    if not args.skip_soft_q:
        q_config, q_result = learn("soft_q", text_q, args.soft_q, k_q)
        decoders["soft_q"] = {"model": sft, "q_model": q_result.q_model, "beta": float(q_config.beta)}
    print(f"seed {seed}: SFT {args.sft_steps} steps (loss {float(losses[-1]):.3f}), seconds {timings}", flush=True)
    rows = []
    for name, decoder in decoders.items():
        q_model = decoder.get("q_model")
        beta = decoder.get("beta", 0.0)
        for decoding, k in (("greedy", k_eval), ("temperature 1", jax.random.fold_in(k_eval, 1))):
            out = generate(decoder["model"], prompts, k, do_sample=decoding != "greedy", beta=beta, q_params=q_model)
            kl = kl_to_reference(
                decoder["model"], sft, out.tokens, out.prompt_lengths, out.lengths, q_model=q_model, beta=beta
            )
            row = {"seed": seed, "model": name, "decoding": decoding, "problems": len(prompts)}
            row.update(score(out.texts, prompts))
            row["kl"] = float(kl.mean()) if decoding == "temperature 1" else None  # greedy: not a distribution
            rows.append(row)
            if seed == args.seeds[0] and decoding == "greedy":
                samples.extend(
                    {"env": ENV_ID, "model": name, "prompt": p, "text": t}
                    for p, t in zip(prompts, out.texts, strict=True)
                )
    return rows, {"seed": seed, "timings": timings, "curves": curves}


def summarise(rows: list[dict]) -> list[dict]:
    """Mean and minimum over seeds of each score, per model and decoding."""
    table = []
    for model in MODELS:
        for decoding in ("greedy", "temperature 1"):
            members = [r for r in rows if r["model"] == model and r["decoding"] == decoding]
            if not members:
                continue
            entry = {"model": model, "decoding": decoding, "seeds": len(members)}
            for column in ("accuracy", "well_formed", "kl"):
                values = [m[column] for m in members if m[column] is not None]
                if not values:
                    continue
                entry[column] = float(np.mean(values))
                entry[f"{column}_min"] = float(np.min(values))
            table.append(entry)
    return table


def plot(results: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[plot]'): no figure")
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    width = 0.38
    for offset, decoding in ((-width / 2, "greedy"), (width / 2, "temperature 1")):
        entries = [e for e in results["summary"] if e["decoding"] == decoding]
        xs = np.arange(len(entries)) + offset
        left.bar(xs, [e["accuracy"] for e in entries], width, label=decoding)
        for x, e in zip(xs, entries, strict=True):
            left.text(x, e["accuracy"] + 0.01, f"{e['accuracy']:.2f}", ha="center", va="bottom", fontsize=7)
    left.set_xticks(range(len(entries)), [e["model"] for e in entries])
    left.axhline(0.9, color="k", lw=0.8, ls="--")
    left.set_ylim(0, 1.1)
    left.set_title(
        f"held-out accuracy, {results['settings']['problems']} problems, mean of {len(results['settings']['seeds'])} seeds",
        fontsize=9,
    )
    left.legend(fontsize=8)
    for name, colour in (("grpo", "tab:orange"), ("soft_q", "tab:green")):
        for i, run in enumerate(r for r in results["runs"] if name in r["curves"]):
            c = run["curves"][name]
            fraction = np.arange(1, len(c["episode_return"]) + 1) / len(c["episode_return"])
            right.plot(fraction, c["episode_return"], color=colour, lw=1, label=name if i == 0 else None)
    right.set_xlabel("fraction of the run")
    right.set_ylabel("mean reward of training samples")
    right.set_title("training curves (every seed)", fontsize=9)
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("experiments/text_rl/results"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 4, 5], help="seeds (default 3 4 5)")
    parser.add_argument("--problems", type=int, default=500, help="held-out problems per model (default 500)")
    parser.add_argument("--noise", type=float, default=0.6, help="the teacher's share of carry mistakes")
    parser.add_argument("--sft-steps", type=int, default=2000, help="supervised steps (default 2000)")
    parser.add_argument(
        "--grpo", nargs="+", default=[], metavar="FIELD=VALUE", help=f"GRPO settings (default: {GRPO_SETTINGS})"
    )
    parser.add_argument(
        "--soft-q", nargs="+", default=[], metavar="FIELD=VALUE", help="soft Q-learning settings (default: its own)"
    )
    parser.add_argument("--skip-soft-q", action="store_true", help="GRPO only (tuning runs)")
    parser.add_argument(
        "--split", choices=("test", "train"), default="test", help="score on held-out (test) or train problems"
    )
    parser.add_argument("--plot-only", action="store_true", help="redraw the figure from --out's results.json")
    args = parser.parse_args()
    if args.plot_only:
        plot(json.loads((args.out / "results.json").read_text()), args.out / "text_rl.png")
        return
    if args.problems < 1:
        parser.error("--problems must be >= 1")
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        args.grpo = GRPO_SETTINGS | settings_of(args.grpo)
        args.soft_q = settings_of(args.soft_q)
        grpo.default_config(ENV_ID).replace(**args.grpo)
        text_q.default_config(ENV_ID).replace(**args.soft_q)
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    prompts = [f"{a}+{b}=" for a, b in problems(jax.random.key(12345), args.problems, args.split)]
    rows, runs, samples = [], [], []
    for seed in args.seeds:
        seed_rows, run = run_seed(seed, args, prompts, samples)
        rows += seed_rows
        runs.append(run)
    table = summarise(rows)
    settings = {
        "env": ENV_ID,
        "env_kwargs": ENV_KWARGS,
        "noise": args.noise,
        "sft_steps": args.sft_steps,
        "grpo_config": grpo.default_config(ENV_ID).replace(**args.grpo).to_dict(),
        "soft_q_config": text_q.default_config(ENV_ID).replace(**args.soft_q).to_dict(),
        "seeds": args.seeds,
        "problems": args.problems,
        "split": args.split,
        "seconds": round(time.perf_counter() - start, 1),
        "jax": jax.__version__,
        "platform": f"{platform.machine()} {jax.default_backend()}",
    }
    results = {"settings": settings, "rows": rows, "summary": table, "runs": runs}
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    with (args.out / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    with (args.out / "samples.jsonl").open("w") as f:
        for sample in samples:
            f.write(json.dumps(sample) + "\n")
    plot(results, args.out / "text_rl.png")
    print(f"\n{'model':<8} {'decoding':<14} {'accuracy':>8} {'min':>6} {'well-formed':>11} {'KL to SFT':>9}")
    for e in table:
        kl = f"{e['kl']:>9.2f}" if e["decoding"] == "temperature 1" else f"{'':>9}"
        print(
            f"{e['model']:<8} {e['decoding']:<14} {e['accuracy']:>8.3f} {e['accuracy_min']:>6.3f} {e['well_formed']:>11.3f} {kl}"
        )
    print(
        f"\n{len(args.seeds)} seed(s), {args.problems} held-out problems, in {settings['seconds']:.0f} s; wrote {args.out}"
    )


if __name__ == "__main__":
    main()
