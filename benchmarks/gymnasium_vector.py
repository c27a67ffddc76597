"""Gymnasium vector-environment throughput: ``gymnasium.make_vec("jrl/CartPole-v1")`` against
Gymnasium's own ``CartPole-v1`` in ``SyncVectorEnv`` and ``AsyncVectorEnv``, in the same run.

Every contender is driven the way a Gymnasium user drives a vector environment: a NumPy batch of
random actions in (drawn from ``numpy.random`` every step, inside the timed loop), NumPy
observations, rewards, terminations, truncations and infos out, same-step auto-reset
(``AutoresetMode.SAME_STEP``: finished copies restart within the step, the last observation in
``info["final_obs"]``). Throughput is environment steps per second (copies x calls / seconds), the
best of ``--repeats`` timed runs of ``--steps`` calls each; jrl's compile time (its first reset
and first step, which compile) is reported on its own and excluded.

    python benchmarks/gymnasium_vector.py             # 1,024 copies (about half a minute on 2 cores)
    python benchmarks/gymnasium_vector.py --quick     # a smoke run

Contenders:
- ``jrl``: ``gymnasium.make_vec("jrl/CartPole-v1", num_envs=N)``, i.e. ``JrlVectorEnv``: one
  compiled ``jit(vmap(step))`` call per step.
- ``SyncVectorEnv``: ``gymnasium.make_vec("CartPole-v1", num_envs=N, vectorization_mode="sync")``,
  a Python loop over N ``gymnasium.make("CartPole-v1")`` environments.
- ``AsyncVectorEnv``: ``gymnasium.make_vec("CartPole-v1", num_envs=K, vectorization_mode="async")``.
  Gymnasium 1.3's ``AsyncVectorEnv`` runs one worker process per copy, with no way to put several
  copies in one worker, and 1,024 processes on a 2-core machine measure the operating system
  rather than Gymnasium; so it runs with K copies for each K of ``--async-envs`` (its throughput,
  K x calls / seconds, is what it delivers on this machine), and the ratio uses its best K.
- ``CartPoleVectorEnv`` (for reference, no target): Gymnasium's own NumPy-vectorized CartPole,
  ``gymnasium.make_vec("CartPole-v1", num_envs=N)`` (its ``vector_entry_point``; next-step
  auto-reset, the only mode it has).

jrl runs first, on a quiet machine, and ``AsyncVectorEnv`` last, its workers started by a
``forkserver`` (forking a process in which JAX has started its threads is unsafe; the forkserver
starts clean, and this script imports JAX only inside ``bench_jrl``, so the workers import
Gymnasium alone).
"""

from __future__ import annotations

import argparse
import os
import time

import gymnasium
import numpy as np
from gymnasium.vector import AutoresetMode

SAME_STEP = {"autoreset_mode": AutoresetMode.SAME_STEP}


def timed_steps(envs, num_steps: int, repeats: int, seed: int = 0) -> float:
    """Best seconds for ``num_steps`` calls of ``envs.step`` with fresh random NumPy actions each."""
    rng = np.random.default_rng(seed)
    n = envs.num_envs
    envs.reset(seed=seed)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(num_steps):
            envs.step(rng.integers(0, 2, size=n))
        best = min(best, time.perf_counter() - start)
    return best


def bench_gymnasium(mode: str, num_envs: int, num_steps: int, repeats: int) -> dict:
    vector_kwargs = SAME_STEP | ({"context": "forkserver"} if mode == "async" else {})
    kwargs = {} if mode == "vector_entry_point" else {"vector_kwargs": vector_kwargs}
    start = time.perf_counter()
    envs = gymnasium.make_vec("CartPole-v1", num_envs=num_envs, vectorization_mode=mode, **kwargs)
    build = time.perf_counter() - start
    seconds = timed_steps(envs, num_steps, repeats)
    envs.close()
    return {"num_envs": num_envs, "steps": num_steps, "seconds": seconds, "build": build}


def bench_jrl(num_envs: int, num_steps: int, repeats: int, mode: AutoresetMode = AutoresetMode.SAME_STEP) -> dict:
    import jax

    import jrl.wrappers.gymnasium  # noqa: F401  (registers jrl/CartPole-v1)

    start = time.perf_counter()
    envs = gymnasium.make_vec("jrl/CartPole-v1", num_envs=num_envs, autoreset_mode=mode)
    assert type(envs).__name__ == "JrlVectorEnv" and envs.metadata["autoreset_mode"] == mode
    build = time.perf_counter() - start
    start = time.perf_counter()
    envs.reset(seed=0)
    envs.step(np.zeros(num_envs, np.int64))
    compile_seconds = time.perf_counter() - start
    seconds = timed_steps(envs, num_steps, repeats)
    breakdown = where_the_time_goes(envs, num_steps, repeats) if mode == AutoresetMode.SAME_STEP else None
    envs.close()
    return {
        "num_envs": num_envs,
        "steps": num_steps,
        "seconds": seconds,
        "build": build,
        "compile": compile_seconds,
        "backend": jax.default_backend(),
        "breakdown": breakdown,
    }


def where_the_time_goes(envs, num_steps: int, repeats: int) -> dict:
    """Milliseconds per call of the parts of a same-step ``JrlVectorEnv.step`` (reaching into its
    private compiled function): the compiled step alone (its outputs fetched to the host, as
    ``step`` does), an empty compiled call with the same arguments and as many outputs (the cost of a call
    and its buffers), the same step inside one compiled ``lax.scan`` over ``num_steps`` steps (per
    step: what the step's kernels cost once a call's fixed cost is shared), and the number of XLA
    kernels (fusions) the step compiles to."""
    import jax

    step = envs._functions["same_step"]
    args = (envs._keys, envs._counts, envs.jrl_state)
    actions = [np.random.default_rng(s).integers(0, 2, envs.num_envs).astype(np.int32) for s in range(num_steps)]

    def empty(keys, counts, state, actions, params):
        del params  # the same arguments and as many outputs, nothing computed
        return counts, state, jax.numpy.stack([state.x, state.x]), jax.numpy.stack([state.x] * 3), {}

    def timed(function) -> float:
        function(*args, actions[0], envs.jrl_params)  # compiled before the clock starts
        best = float("inf")
        for _ in range(repeats):
            keys, counts, state = args
            start = time.perf_counter()
            for a in actions:
                counts, state, obs, flags, _ = function(keys, counts, state, a, envs.jrl_params)
                np.asarray(obs), np.asarray(flags)
            best = min(best, time.perf_counter() - start)
        return best / num_steps * 1e3

    @jax.jit
    def scanned(keys, counts, state, all_actions, params):
        def body(carry, a):
            counts, state, obs, flags, _ = step(keys, *carry, a, params)
            return (counts, state), (obs[0, :, 0], flags)

        return jax.lax.scan(body, (counts, state), all_actions)

    all_actions = jax.numpy.asarray(np.stack(actions))
    jax.block_until_ready(scanned(*args, all_actions, envs.jrl_params))
    best_scan = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(scanned(*args, all_actions, envs.jrl_params))
        best_scan = min(best_scan, time.perf_counter() - start)
    compiled = step.lower(*args, actions[0], envs.jrl_params).compile()
    return {
        "compiled step": timed(step),
        "empty call": timed(jax.jit(empty)),
        "in a scan": best_scan / num_steps * 1e3,
        "kernels": compiled.as_text().count(" fusion("),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-envs", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=1000, help="vector steps per timed run (jrl and vectorized)")
    parser.add_argument("--sync-steps", type=int, default=50, help="vector steps per timed run of SyncVectorEnv")
    parser.add_argument("--async-envs", default="2,16,64", help="comma-separated copy counts for AsyncVectorEnv")
    parser.add_argument("--async-steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 64 copies, few steps")
    args = parser.parse_args()
    if args.quick:
        quick = {"num_envs": 64, "steps": 20, "sync_steps": 5, "async_envs": "2", "async_steps": 20, "repeats": 1}
        vars(args).update(quick)

    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs, gymnasium {gymnasium.__version__}")
    n = args.num_envs
    jrl_row = bench_jrl(n, args.steps, args.repeats)
    jrl_next_row = bench_jrl(n, args.steps, args.repeats, AutoresetMode.NEXT_STEP)
    rows = [("SyncVectorEnv", bench_gymnasium("sync", n, args.sync_steps, args.repeats))]
    numpy_row = ("CartPoleVectorEnv (NumPy)", bench_gymnasium("vector_entry_point", n, args.steps, args.repeats))
    for k in [int(k) for k in args.async_envs.split(",")]:
        rows.append((f"AsyncVectorEnv ({k} workers)", bench_gymnasium("async", k, args.async_steps, args.repeats)))
    rows.append(numpy_row)
    rows.append(("jrl JrlVectorEnv, next-step auto-reset", jrl_next_row))
    rows.append(("jrl JrlVectorEnv", jrl_row))

    rate = {name: r["num_envs"] * r["steps"] / r["seconds"] for name, r in rows}
    jrl_rate = rate["jrl JrlVectorEnv"]
    best_async = max((v for k, v in rate.items() if k.startswith("AsyncVectorEnv")), default=float("nan"))
    print(f"\nCartPole-v1, random actions, same-step auto-reset; best of {args.repeats} runs\n")
    print("| contender | copies | steps/s | jrl / contender |")
    print("|---|---:|---:|---:|")
    for name, r in rows:
        print(f"| {name} | {r['num_envs']:,} | {rate[name]:,.0f} | {jrl_rate / rate[name]:.1f}x |")
    print(
        f"\njrl: compile (first reset + first step) {jrl_row['compile']:.2f} s, backend {jrl_row['backend']}; "
        f"per call {jrl_row['seconds'] / jrl_row['steps'] * 1e3:.3f} ms for {n:,} copies"
    )
    parts = jrl_row["breakdown"]
    print(
        f"where a same-step call goes, ms: whole step {jrl_row['seconds'] / jrl_row['steps'] * 1e3:.3f}; "
        f"its compiled step alone (outputs fetched) {parts['compiled step']:.3f}; an empty call with "
        f"the same arguments and as many outputs {parts['empty call']:.3f}; Python around it "
        f"{jrl_row['seconds'] / jrl_row['steps'] * 1e3 - parts['compiled step']:.3f}; "
        f"the step compiles to {parts['kernels']} XLA kernels, which cost {parts['in a scan']:.3f} per step "
        f"inside one compiled scan of {jrl_row['steps']} steps"
    )
    print(
        f"targets: >= 20x SyncVectorEnv: {jrl_rate / rate['SyncVectorEnv']:.1f}x; "
        f">= 5x AsyncVectorEnv (its best): {jrl_rate / best_async:.1f}x"
    )
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
