"""The text models out of jrl: what int8 and float16 weights cost in quality, and whether every
runtime writes the same texts.

For GraphWalkText-v0 and WordGen-v0: pretrain a language model and run soft Q-learning on it
(their default configs, from ``jax.random.key(1000)``: a seed no default was chosen on), export the
language model alone and with its Q-head (``jrl.export.text``) as float32, float16 and int8, and

- score each export's decoding over 1,000 episodes, greedy and sampled at temperature 1, with
  the same keys (``jrl.text.metrics``: a walk's optimality, a word's validity), through the
  export's own weights as stored (``TextExport.models``: int8 dequantized);
- decode 100 prompts greedily in JAX (``jrl.text.generate``), the StableHLO program, ONNX Runtime
  and TensorFlow (the SavedModel's ``generate`` signature, strings in and out) and count the texts
  that equal JAX's; the prompts are prefixes (1-3 tokens; words: 0-3 letters) of the float model's
  own sampled texts;
- weigh the safetensors files.

Writes ``--out``/deployment_text.csv (one row per environment, model, weights and decoding) and
deployment_text.md (the tables), and prints them.

    python experiments/deployment_text.py        # about 5 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
import onnxruntime

import jrl
from jrl.envs import vocabulary
from jrl.export.onnx_model import export_onnx
from jrl.export.stablehlo import export_stablehlo, load_stablehlo
from jrl.export.tensorflow import export_tf, load_tf
from jrl.export.text import export_text
from jrl.text import generate, pretrain
from jrl.text import q_learning as text_q
from jrl.text.generate import encode_prompts
from jrl.text.metrics import sample_episodes, score_episodes
from jrl.text.pretrain import default_pretrain_config

ENVS = {"GraphWalkText-v0": "optimality", "WordGen-v0": "valid_rate"}
SEED = 1000
EPISODES = 1000
NUM_PROMPTS = 100
WEIGHTS = ("float32", "float16", "int8")
COLUMNS = ("env", "model", "weights", "decoding", "metric", "score", "mean_return", "distinct_texts", "file_bytes")
RUNTIMES = ("stablehlo", "onnxruntime", "tensorflow")


def train(env_id: str, env, env_params) -> tuple:
    """The pretrained model, the Q-model and beta of ``env_id``'s defaults, from key(SEED)."""
    k_pre, k_q = jax.random.split(jax.random.key(SEED))
    model, _ = pretrain(k_pre, env, env_params, default_pretrain_config(env_id))
    config = text_q.default_config(env_id)
    result = jax.block_until_ready(jax.jit(text_q.make_train(config, env, env_params, model=model))(k_q))
    text_q.check_finite(result)
    return model, result.q_model, config.beta


def prompts_from(env_id: str, texts: list[str], rng: np.random.Generator) -> list[str]:
    """NUM_PROMPTS prefixes of ``texts``: 1-3 nodes of a walk, 0-3 letters of a word."""
    chosen = rng.choice(len(texts), NUM_PROMPTS, replace=False)
    if env_id == "GraphWalkText-v0":
        return [" ".join(texts[i].split(" ")[: rng.integers(1, 4)]) for i in chosen]
    return [texts[i][: rng.integers(0, 4)] for i in chosen]


def same_texts(export, prompts: list[str], folder: Path) -> dict[str, int]:
    """How many of the prompts' greedy texts each runtime writes as JAX does."""
    lm, q_model, beta = export.models()
    expected = generate(lm, prompts, jax.random.key(0), do_sample=False, beta=beta, q_params=q_model).texts
    vocab = vocabulary(export.config.env_id)
    tokens, lengths = encode_prompts(vocab, prompts, export.config.context_length)
    room = export.config.context_length - int(lengths.max())
    written = {}
    program = load_stablehlo(export_stablehlo(export, folder / "model.stablehlo"))
    written["stablehlo"] = vocab.decode_batch(program(tokens, lengths, room))
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(export_onnx(export, folder / "model.onnx")), options)
    feed = {"tokens": tokens, "prompt_lengths": lengths, "max_new_tokens": np.array(room, np.int32)}
    written["onnxruntime"] = vocab.decode_batch(session.run(None, feed)[0])
    written["tensorflow"] = load_tf(export_tf(export, folder / "model.savedmodel")).generate(prompts)
    return {name: sum(a == b for a, b in zip(texts, expected, strict=True)) for name, texts in written.items()}


def run_env(env_id: str, folder: Path) -> tuple[list[dict], list[dict]]:
    env, env_params = jrl.make(env_id)
    start = time.perf_counter()
    model, q_model, beta = train(env_id, env, env_params)
    print(f"{env_id}: pretrained and Q-learned in {time.perf_counter() - start:.0f} s")
    metric = ENVS[env_id]
    k_eval = jax.random.key(SEED + 1)
    rows, agreement = [], []
    for name, export in (("lm", export_text(model)), ("lm+q", export_text(model, q_model, beta))):
        for weights in WEIGHTS:
            stored = export if weights == "float32" else export.quantized(weights)
            file_bytes = stored.save(folder / f"{env_id}-{name}-{weights}.safetensors").stat().st_size
            lm, q, b = stored.models()
            for decoding in ("temperature 1", "greedy"):
                episodes = sample_episodes(
                    k_eval, env, env_params, lm, q, b, num_episodes=EPISODES, do_sample=decoding != "greedy"
                )
                scores = score_episodes(env, env_params, episodes)
                rows.append(
                    {
                        "env": env_id,
                        "model": name,
                        "weights": weights,
                        "decoding": decoding,
                        "metric": metric,
                        "score": scores[metric],
                        "mean_return": scores["mean_return"],
                        "distinct_texts": scores["distinct_texts"],
                        "file_bytes": file_bytes,
                    }
                )
                if name == "lm+q" and weights == "float32" and decoding == "temperature 1":
                    prompts = prompts_from(env_id, scores["texts"], np.random.default_rng(SEED))
        if name == "lm+q":
            for weights in ("float32", "int8"):
                stored = export if weights == "float32" else export.quantized(weights)
                sub = folder / f"{env_id}-{weights}"
                sub.mkdir()
                counts = same_texts(stored, prompts, sub)
                agreement.append({"env": env_id, "weights": weights, "prompts": NUM_PROMPTS, **counts})
                print(f"{env_id} {weights}: texts equal to JAX's out of {NUM_PROMPTS}: {counts}")
    return rows, agreement


def markdown(rows: list[dict], agreement: list[dict]) -> str:
    lines = [
        "| environment | model | decoding | metric | float32 | float16 | int8 | int8 - float32 |",
        "|---|---|---|---|---:|---:|---:|---:|",
    ]
    keyed = {(r["env"], r["model"], r["decoding"], r["weights"]): r for r in rows}
    for env_id in ENVS:
        for name in ("lm", "lm+q"):
            for decoding in ("temperature 1", "greedy"):
                score = {w: keyed[(env_id, name, decoding, w)]["score"] for w in WEIGHTS}
                lines.append(
                    f"| `{env_id}` | {name} | {decoding} | {ENVS[env_id]} | {score['float32']:.3f} | "
                    f"{score['float16']:.3f} | {score['int8']:.3f} | {score['int8'] - score['float32']:+.3f} |"
                )
    lines += [
        "",
        "| environment | model | safetensors bytes: float32 / float16 / int8 | x smaller (int8) |",
        "|---|---|---|---:|",
    ]
    for env_id in ENVS:
        for name in ("lm", "lm+q"):
            size = {w: keyed[(env_id, name, "greedy", w)]["file_bytes"] for w in WEIGHTS}
            lines.append(
                f"| `{env_id}` | {name} | {size['float32']:,} / {size['float16']:,} / {size['int8']:,} | "
                f"{size['float32'] / size['int8']:.2f}x |"
            )
    lines += [
        "",
        f"| environment | weights | greedy texts equal to JAX's (of {NUM_PROMPTS}): StableHLO / ONNX Runtime / TensorFlow |",
        "|---|---|---|",
    ]
    for a in agreement:
        lines.append(f"| `{a['env']}` | {a['weights']} | {a['stablehlo']} / {a['onnxruntime']} / {a['tensorflow']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("experiments/results"))
    args = parser.parse_args()
    start = time.perf_counter()
    rows, agreement = [], []
    with tempfile.TemporaryDirectory() as scratch:
        for env_id in ENVS:
            folder = Path(scratch) / env_id
            folder.mkdir()
            env_rows, env_agreement = run_env(env_id, folder)
            rows += env_rows
            agreement += env_agreement
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "deployment_text.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    with (args.out / "deployment_text_runtimes.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["env", "weights", "prompts", *RUNTIMES])
        writer.writeheader()
        writer.writerows(agreement)
    table = markdown(rows, agreement)
    (args.out / "deployment_text.md").write_text(table)
    print(f"\n{table}\n{time.perf_counter() - start:.0f} s; wrote {args.out}/deployment_text*.csv and .md")


if __name__ == "__main__":
    main()
