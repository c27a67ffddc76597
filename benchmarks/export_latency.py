"""Greedy-policy latency of the CartPole DQN default's network in every runtime jrl exports to, side
by side in one run: JAX (the jitted ``greedy_policy``, float32; the int8 export's
``stablehlo.policy_function`` jitted), the StableHLO program (``jax.export.deserialize``, its
``call`` jitted), ONNX Runtime, a TensorFlow SavedModel (``tf.saved_model.load``, its
``serving_default`` signature) and NumPy (``NumpyQPolicy``), each in float32 and int8 weights, at
batch 1 and batch 1,024; then the text models' greedy generation (``text_rows``: a default-sized
GraphWalkText-v0 language model with its Q-head, 100 prompts in one call) in JAX (``jrl.text.generate``
with its key/value cache, and the exported decoding function jitted), the StableHLO program, ONNX
Runtime and the SavedModel's ``generate`` signature (strings in and out), in new tokens per second.

    python benchmarks/export_latency.py             # about a minute on 2 cores
    python benchmarks/export_latency.py --quick     # a smoke run: few repeats, NOT results

The network is ``dqn.default_config("CartPole-v1")``'s (4 -> 64 -> 64 -> 2), its parameters
initialised with a fixed key: speed depends on the weights' shapes and types, not their values.
Each runtime gets a NumPy batch of observations and returns the greedy actions as a NumPy array
(the conversions are part of the call, as they are for a program that serves the policy; the jitted
JAX functions take the NumPy array itself, which costs less than ``jnp.asarray`` first: 8 against
39 µs for a trivial function at batch 1). A call's
time is the median over ``--repeats`` timed calls (a quarter as many at batch 1,024), taken in 20
rounds that visit every runtime in turn (so that the machine's load changes reach all alike), with
the 90th percentile beside it; the time to get the runtime ready (read the export, build the
session, jit) and its first call (which compiles in JAX, ONNX Runtime and TensorFlow) are reported
apart.
Every runtime must take the same actions as JAX float32 (float32 weights) or as the NumPy int8
policy (int8) on the timed batch: the table says so.

One thread everywhere: ``XLA_FLAGS`` (``--xla_cpu_multi_thread_eigen=false
intra_op_parallelism_threads=1``) for JAX and the StableHLO program, ONNX Runtime's
``intra_op_num_threads = inter_op_num_threads = 1``, TensorFlow's
``tf.config.threading`` intra- and inter-op threads 1, and ``OMP/OPENBLAS/MKL_NUM_THREADS=1`` for
NumPy's matrix products; all set before any of them starts. The printed table is written to
``benchmarks/results/export_latency.txt``, the rows to ``export_latency.csv``.
"""

from __future__ import annotations

import os

# One thread for every runtime, before any of them is imported (module docstring).
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import csv  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
BATCHES = (1, 1024)
#: The text rows: greedy generation for this many prompts of this environment, in one call.
TEXT_ENV = "GraphWalkText-v0"
TEXT_PROMPTS = 100


def timed_rounds(acts: list[Callable], obs: np.ndarray, repeats: int, rounds: int = 20) -> list[tuple[float, float]]:
    """Median and 90th percentile (microseconds) of each ``act(obs)``'s wall time over ``repeats``
    calls, taken in ``rounds`` rounds that visit every runtime in turn (each round: a few untimed
    calls, then ``repeats / rounds`` timed ones), so that a change in the machine's load during the
    run reaches every runtime alike."""
    per_round = max(repeats // rounds, 1)
    times = [[] for _ in acts]
    for _ in range(rounds):
        for act, spent in zip(acts, times, strict=True):
            for _ in range(3):
                act(obs)
            for _ in range(per_round):
                start = time.perf_counter_ns()
                act(obs)
                spent.append(time.perf_counter_ns() - start)
    return [(float(np.median(t)) / 1e3, float(np.percentile(t, 90)) / 1e3) for t in times]


def contenders(folder: Path) -> list[tuple[str, str, Callable[[], Callable]]]:
    """``(runtime, weights, prepare)``; ``prepare()`` reads the export (or jits) and returns
    ``act(obs [B, 4] float32) -> actions [B]`` as NumPy."""
    import jax
    import onnxruntime
    import tensorflow as tf

    import jrl
    from jrl.algorithms import dqn
    from jrl.export import export_numpy, export_policy, quantize
    from jrl.export.stablehlo import policy_function

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    env, env_params = jrl.make("CartPole-v1")
    config = dqn.default_config("CartPole-v1")
    network = dqn.q_network(config, env, env_params)
    result = dqn.DQNResult(network.init(jax.random.key(0), env.reset(jax.random.key(1), env_params)[0]), {})
    policy, policy_params = dqn.greedy_policy(config, env, env_params, result)
    float32 = export_numpy(config, env, env_params, result)
    policies = {"float32": float32, "int8": quantize(float32, "int8")}
    files = {}
    for weights, exported in policies.items():
        for fmt, suffix in (("stablehlo", ".stablehlo"), ("onnx", ".onnx"), ("tf", ".savedmodel")):
            files[fmt, weights] = export_policy(exported, fmt, folder / f"{weights}{suffix}")

    def jax_float32() -> Callable:
        act = jax.jit(jax.vmap(policy, in_axes=(None, 0, None)))
        key = jax.random.key(0)
        return lambda obs: np.asarray(act(policy_params, obs, key))

    def jax_int8() -> Callable:
        act = jax.jit(policy_function(policies["int8"]))
        return lambda obs: np.asarray(act(obs)[1])

    def stablehlo(weights: str) -> Callable:
        exported = jax.export.deserialize(bytearray(files["stablehlo", weights].read_bytes()))
        act = jax.jit(exported.call)
        return lambda obs: np.asarray(act(obs)[1])

    def onnx_runtime(weights: str) -> Callable:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(str(files["onnx", weights]), options, providers=["CPUExecutionProvider"])
        return lambda obs: session.run(["actions"], {"obs": obs})[0]

    def tensorflow(weights: str) -> Callable:
        # The serving signature (one concrete function) rather than the restored ``act``, which
        # matches its inputs against its traces first: twice the time per call at batch 1.
        serve = tf.saved_model.load(str(files["tf", weights])).signatures["serving_default"]
        return lambda obs: serve(obs=obs)["actions"].numpy()

    def numpy_policy(weights: str) -> Callable:
        return policies[weights]

    rows = [("JAX (jit greedy_policy)", "float32", jax_float32), ("JAX (jit policy_function)", "int8", jax_int8)]
    for name, prepare in (
        ("StableHLO (jit Exported.call)", stablehlo),
        ("ONNX Runtime", onnx_runtime),
        ("TensorFlow SavedModel", tensorflow),
        ("NumPy", numpy_policy),
    ):
        rows += [(name, weights, lambda p=prepare, w=weights: p(w)) for weights in ("float32", "int8")]
    return rows


def text_contenders(folder: Path, prompts: list[str]) -> list[tuple[str, str, Callable[[], Callable]]]:
    """``(runtime, weights, prepare)`` of the text model; ``prepare()`` returns ``generate()`` ->
    the texts (prompt and greedy continuation) of ``prompts``, one string each."""
    import jax
    import onnxruntime
    import tensorflow as tf

    import jrl
    from jrl.export import export_policy, export_text, quantize
    from jrl.export.tensorflow import load_tf
    from jrl.export.text import generate_function
    from jrl.text import generate, init_model
    from jrl.text.generate import encode_prompts
    from jrl.text.pretrain import default_pretrain_config, model_config

    env, _ = jrl.make(TEXT_ENV)
    config = model_config(env, default_pretrain_config(TEXT_ENV))
    lm, q_model = init_model(config, jax.random.key(0)), init_model(config, jax.random.key(1))
    float32 = export_text(lm, q_model, beta=8.0)
    models = {"float32": float32, "int8": quantize(float32, "int8")}
    vocab = jrl.envs.vocabulary(TEXT_ENV)
    tokens, lengths = encode_prompts(vocab, prompts, config.context_length)
    room = np.int32(config.context_length - int(lengths.max()))
    files = {}
    for weights, exported in models.items():
        for fmt, suffix in (("stablehlo", ".stablehlo"), ("onnx", ".onnx"), ("tf", ".savedmodel")):
            files[fmt, weights] = export_policy(exported, fmt, folder / f"text-{weights}{suffix}")

    def jax_generate(weights: str) -> Callable:
        base, q, beta = models[weights].models()
        key = jax.random.key(0)
        return lambda: generate(base, prompts, key, do_sample=False, beta=beta, q_params=q).texts

    def jax_program(weights: str) -> Callable:
        decode = jax.jit(generate_function(models[weights]))
        return lambda: vocab.decode_batch(np.asarray(decode(tokens, lengths, room)))

    def stablehlo(weights: str) -> Callable:
        call = jax.jit(jax.export.deserialize(bytearray(files["stablehlo", weights].read_bytes())).call)
        return lambda: vocab.decode_batch(np.asarray(call(tokens, lengths, room)))

    def onnx_runtime(weights: str) -> Callable:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        options.log_severity_level = 3
        session = onnxruntime.InferenceSession(str(files["onnx", weights]), options, providers=["CPUExecutionProvider"])
        feed = {"tokens": tokens, "prompt_lengths": lengths, "max_new_tokens": np.array(room)}
        return lambda: vocab.decode_batch(session.run(None, feed)[0])

    def tensorflow(weights: str) -> Callable:
        serve = load_tf(files["tf", weights]).model.signatures["generate"]  # strings in, strings out
        batch = tf.constant(prompts)
        return lambda: [text.decode() for text in next(iter(serve(prompts=batch).values())).numpy()]

    rows = []
    for name, prepare in (
        ("JAX (jrl.text.generate, cached)", jax_generate),
        ("JAX (jit generate_function)", jax_program),
        ("StableHLO (jit Exported.call)", stablehlo),
        ("ONNX Runtime", onnx_runtime),
        ("TensorFlow SavedModel (generate, strings)", tensorflow),
    ):
        rows += [(name, weights, lambda p=prepare, w=weights: p(w)) for weights in ("float32", "int8")]
    return rows


def text_rows(folder: Path, repeats: int) -> list[dict]:
    """Greedy text generation of ``TEXT_PROMPTS`` GraphWalkText-v0 prompts (one call for the
    batch) by the default-sized language model with its Q-head, in each runtime: median and 90th
    percentile of ``repeats`` calls (interleaved rounds, as the policies'), new tokens per second
    (the tokens written after the prompts, up to each text's end), ready and first-call time, and
    whether its texts are JAX's (``jrl.text.generate``, float32 or int8)."""
    rng = np.random.default_rng(1)
    prompts = [" ".join(map(str, rng.integers(0, 21, rng.integers(1, 3)))) for _ in range(TEXT_PROMPTS)]
    rows = text_contenders(folder, prompts)
    calls, ready, first = [], [], []
    for _, _, prepare in rows:
        start = time.perf_counter()
        calls.append(prepare())
        ready.append(time.perf_counter() - start)
        start = time.perf_counter()
        calls[-1]()
        first.append(time.perf_counter() - start)
    timings = timed_rounds([lambda _, c=c: c() for c in calls], None, repeats, rounds=min(repeats, 10))
    reference = {weights: calls[i]() for i, (runtime, weights, _) in enumerate(rows) if "cached" in runtime}
    results = []
    for (runtime, weights, _), call, (median, p90), r, f in zip(rows, calls, timings, ready, first, strict=True):
        texts = call()
        new_tokens = sum(len(t.split(" ")) - len(p.split(" ")) for t, p in zip(texts, prompts, strict=True))
        results.append(
            {
                "runtime": runtime,
                "weights": weights,
                "batch": TEXT_PROMPTS,
                "median_us": round(median, 1),
                "p90_us": round(p90, 1),
                "new_tokens": new_tokens,
                "tokens_per_s": round(new_tokens / (median / 1e6)),
                "ready_s": round(r, 3),
                "first_call_s": round(f, 3),
                "same_texts": "yes" if texts == reference[weights] else "NO",
            }
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2000, help="timed calls per runtime and batch size")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 50 repeats, NOT results")
    args = parser.parse_args()
    if args.quick:
        args.repeats = 50
    import jax
    import onnxruntime
    import tensorflow as tf

    header = (
        f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
        f"one thread per runtime; jax {jax.__version__}, onnxruntime {onnxruntime.__version__}, "
        f"tensorflow {tf.__version__}, numpy {np.__version__}; median of {args.repeats} calls"
    )
    print(header)
    rng = np.random.default_rng(0)
    batches = {b: rng.normal(size=(b, 4)).astype(np.float32) for b in BATCHES}
    results = []
    with tempfile.TemporaryDirectory() as folder:
        rows = contenders(Path(folder))
        acts, ready, first = [], [], []
        for _, _, prepare in rows:
            start = time.perf_counter()
            acts.append(prepare())
            ready.append(time.perf_counter() - start)
            start = time.perf_counter()
            acts[-1](batches[1])
            first.append(time.perf_counter() - start)
        reference = {}
        for batch, obs in batches.items():
            timings = timed_rounds(acts, obs, args.repeats if batch == 1 else max(args.repeats // 4, 20))
            for (runtime, weights, _), act, (median, p90), r, f in zip(rows, acts, timings, ready, first, strict=True):
                actions = np.asarray(act(obs))
                # JAX float32 and NumPy int8 are the references their weights' rows agree with.
                if (runtime.startswith("JAX") and weights == "float32") or (runtime == "NumPy" and weights == "int8"):
                    reference.setdefault((weights, batch), actions)
                results.append(
                    {
                        "runtime": runtime,
                        "weights": weights,
                        "batch": batch,
                        "median_us": round(median, 1),
                        "p90_us": round(p90, 1),
                        "us_per_obs": round(median / batch, 3),
                        "ready_s": round(r, 3),
                        "first_call_s": round(f, 3),
                        "actions": actions,
                    }
                )
        text_results = text_rows(Path(folder), max(args.repeats // 40, 5))
    for row in results:
        expected = reference.get((row["weights"], row["batch"]))
        row["same_actions"] = "yes" if expected is not None and np.array_equal(row.pop("actions"), expected) else "NO"

    lines = [
        header,
        "",
        "| runtime | weights | µs per call, batch 1 (p90) | µs per call, batch 1,024 (p90) | µs per obs, 1,024 "
        "| ready s | first call s (batch 1) | same actions |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for runtime, weights, _ in rows:
        one, many = (
            {(r["runtime"], r["weights"], r["batch"]): r for r in results}[runtime, weights, b] for b in BATCHES
        )
        same = "yes" if one["same_actions"] == many["same_actions"] == "yes" else "NO"
        lines.append(
            f"| {runtime} | {weights} | {one['median_us']:,.1f} ({one['p90_us']:,.1f}) "
            f"| {many['median_us']:,.1f} ({many['p90_us']:,.1f}) | {many['us_per_obs']:.3f} "
            f"| {one['ready_s']:.3f} | {one['first_call_s']:.3f} | {same} |"
        )
    lines += [
        "",
        f"Greedy generation, {TEXT_PROMPTS} {TEXT_ENV} prompts in one call (the default-sized language model "
        "with its Q-head: 2 layers of width 64, a 10-token buffer)",
        "",
        "| runtime | weights | ms per call (p90) | new tokens per s | ready s | first call s | same texts |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for row in text_results:
        lines.append(
            f"| {row['runtime']} | {row['weights']} | {row['median_us'] / 1e3:,.2f} ({row['p90_us'] / 1e3:,.2f}) "
            f"| {row['tokens_per_s']:,} | {row['ready_s']:.3f} | {row['first_call_s']:.3f} | {row['same_texts']} |"
        )
    lines += ["", f"load average at the end {os.getloadavg()[0]:.2f}"]
    text = "\n".join(lines)
    print("\n".join(lines[1:]))
    if args.quick:
        print("QUICK RUN: few repeats, NOT results (nothing written)")
        return
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "export_latency.txt").write_text(text + "\n")
    with open(RESULTS / "export_latency.csv", "w", newline="") as f:
        fields = list(dict.fromkeys(key for row in results + text_results for key in row))
        writer = csv.DictWriter(f, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(results + text_results)
    print(f"wrote {RESULTS / 'export_latency.txt'} and export_latency.csv")


if __name__ == "__main__":
    main()
