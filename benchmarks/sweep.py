"""``jrl.sweep`` against the loops a user would otherwise write, for the same trainings.

Two cases, each a grid of configurations x seeds over a tuned default (the sizes below; the full
defaults would take hours here, see docs/benchmarks.md):

- **q_learning** on FrozenLake8x8-v1: 16 alpha x 16 gamma = 256 configurations x 16 seeds
  (4,096 trainings) of ``q_learning.default_config("FrozenLake8x8-v1")`` with ``num_envs=16``
  instead of 1,024 (1/64 of the environment steps; the same 5,000 steps and 100 log records);
- **dqn** on CartPole-v1: 8 learning_rate x 8 tau = 64 configurations x 4 seeds (256 trainings) of
  ``dqn.default_config("CartPole-v1")`` with ``stop_return=None`` (every member does the same
  work) and ``num_steps=2,000`` instead of the default's 40,000 (1,000 iterations before learning starts, as in
  the default, then 1,000 gradient steps).

Every arm trains the same (configuration, seed) members with the same keys
(``jax.random.key(seed)``), compile and run timed apart:

- **jrl.sweep**: one call, in a subprocess with ``--xla_force_host_platform_device_count=1`` and
  again with ``=2`` (``JAX_PLATFORMS=cpu``); the two results are compared bit for bit. It also
  does what the loops do not: the final greedy evaluation of every member (tabular: exact, from
  the model; DQN: 100 episodes), the table with bootstrap intervals, and the sweep's files.
- **(a)** ``jax.jit(make_train(config, ...))(key)``, a fresh ``jit`` (trace + compile) per
  training: a sample of trainings spread over the grid, extrapolated to all of them.
- **(b)** one ``jax.jit(jax.vmap(make_train(config, ...)))`` over the seeds, compiled once, the
  hyperparameters passed as data, called once per configuration: a sample of configurations
  spread over the grid (or all), extrapolated to all of them. Its learning curves (and, for
  tabular runs, exact final returns) are compared with the sweep's.

Ratios are the 1-device sweep's (the loops run on one device too) against (a) and (b).

``PJRT_NPROC`` (XLA's CPU thread pool size) is set to the number of cores + 1 for every arm unless
it is set already: jaxlib 0.10.2's batched LU (``jnp.linalg.solve``, which Q-learning's exact
``greedy_value`` metric calls at every log record) waits on tasks it puts in that same pool, so
with as many host devices as pool threads all of them wait and the sweep hangs (FrozenLake8x8 on
2 devices with the default 2-thread pool here; the 4x4 lake's 16-state solves do not split).

    python benchmarks/sweep.py            # the full tables (7 minutes on 2 CPU cores shared with other jobs)
    python benchmarks/sweep.py --quick    # a smoke run: tiny sizes, NOT results
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Before JAX starts (see above); the children inherit it.
os.environ.setdefault("PJRT_NPROC", str((os.cpu_count() or 1) + 1))

import jax
import numpy as np

import jrl
from jrl.algorithms import dqn, q_learning
from jrl.experiment import train_key, train_keys
from jrl.experiment.sweeps import SweepSpec, exact_greedy_returns

TARGET_A, TARGET_B = 50.0, 10.0  # issue 13: the sweep vs a fresh jit per training, vs one compiled loop


def cases(quick: bool) -> dict[str, dict]:
    """Per case: the sweep's arguments and the sample sizes of the loops (a) and (b)."""
    frozen = q_learning.default_config("FrozenLake8x8-v1")
    cart = dqn.default_config("CartPole-v1")
    if quick:
        return {
            "q_learning": {
                "algo": "q_learning",
                "env": "FrozenLake8x8-v1",
                "config": frozen.replace(num_envs=4, num_steps=200),
                "changed": "num_envs=4, num_steps=200",
                "grid": {"alpha": [0.05, 0.1, 0.2, 0.4], "gamma": [0.9, 0.95, 0.99, 0.999]},
                "seeds": 4,
                "sample_a": 1,
                "sample_b": 2,
            },
            "dqn": {
                "algo": "dqn",
                "env": "CartPole-v1",
                "config": cart.replace(
                    stop_return=None, num_steps=200, learning_starts=1000, log_interval=100, eval_episodes=4
                ),
                "changed": "stop_return=None, num_steps=200, learning_starts=1000, log_interval=100, eval_episodes=4",
                "grid": {"learning_rate": [5e-4, 2e-3], "tau": [0.5, 1.0]},
                "seeds": 2,
                "sample_a": 1,
                "sample_b": 2,
                "eval_episodes": 4,
            },
        }
    return {
        "q_learning": {
            "algo": "q_learning",
            "env": "FrozenLake8x8-v1",
            "config": frozen.replace(num_envs=16),
            "changed": "num_envs=16 (default 1,024)",
            "grid": {
                "alpha": [float(np.float32(a)) for a in np.geomspace(0.01, 0.8, 16)],
                "gamma": [float(np.float32(g)) for g in np.linspace(0.9, 0.999, 16)],
            },
            "seeds": 16,
            "sample_a": 8,
            "sample_b": 32,
        },
        "dqn": {
            "algo": "dqn",
            "env": "CartPole-v1",
            "config": cart.replace(stop_return=None, num_steps=2000),
            "changed": "stop_return=None (default 500), num_steps=2,000 (default 20,000)",
            "grid": {
                "learning_rate": [float(np.float32(lr)) for lr in np.geomspace(2.5e-4, 4e-3, 8)],
                "tau": [i / 8 for i in range(1, 9)],
            },
            "seeds": 4,
            "sample_a": 3,
            "sample_b": 4,
        },
    }


def resolve(case: dict) -> SweepSpec:
    return SweepSpec.resolve(
        case["algo"],
        case["env"],
        config=case["config"],
        grid=case["grid"],
        seeds=case["seeds"],
        eval_episodes=case.get("eval_episodes", 100),
    )


def spread(total: int, count: int) -> list[int]:
    """``count`` indices spread evenly over ``range(total)``."""
    count = min(count, total)
    return [i * total // count for i in range(count)]


# --- jrl.sweep, in a child process with a given number of host devices ------------------------------
def child(names: list[str], quick: bool, out: Path) -> None:
    """Run the sweeps of ``names`` in this process; write their numbers and timings under ``out``."""
    for name in names:
        case = cases(quick)[name]
        spec = resolve(case)
        baseline_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        directory = out / f"{name}-sweep"
        log = io.StringIO()
        start = time.perf_counter()
        with contextlib.redirect_stdout(log):
            result = jrl.sweep(
                spec.algo,
                spec.env,
                spec.config,
                grid=case["grid"],
                seeds=case["seeds"],
                eval_episodes=spec.eval_episodes,
                out=directory,
            )
        total = time.perf_counter() - start
        session = json.loads((directory / "metadata.json").read_text())["sessions"][-1]
        np.savez(
            out / f"{name}.npz",
            final_returns=result.final_returns,
            curves=result.curves,
            diverged=result.diverged,
        )
        info = {
            "devices": jax.device_count(),
            "backend": jax.default_backend(),
            "total_s": total,
            "compile_s": session["compile_seconds"],
            "batches_s": session["run_seconds"],
            "peak_rss_growth_mib": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline_rss) / 1024,
            "plan": [line for line in log.getvalue().splitlines() if "estimated memory" in line or "sweep:" in line],
            "best": log.getvalue().strip().splitlines()[-1],
        }
        (out / f"{name}.json").write_text(json.dumps(info))


def run_sweep_child(names: list[str], quick: bool, devices: int | None) -> dict[str, dict]:
    """The sweeps in a fresh process: ``devices`` forced CPU host devices, or (``None``) this
    process's own backend (an accelerator)."""
    env = dict(os.environ)
    if devices is not None:
        flags = [f for f in env.get("XLA_FLAGS", "").split() if "xla_force_host_platform_device_count" not in f]
        env["XLA_FLAGS"] = " ".join([*flags, f"--xla_force_host_platform_device_count={devices}"])
        env["JAX_PLATFORMS"] = "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, __file__, "--child", ",".join(names), "--child-out", tmp]
        command += ["--quick"] if quick else []
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"the sweep subprocess failed ({done.returncode}):\n{done.stderr[-4000:]}")
        results = {}
        for name in names:
            with np.load(Path(tmp) / f"{name}.npz", allow_pickle=True) as data:
                numbers = {key: data[key] for key in data.files}
            results[name] = {**json.loads((Path(tmp) / f"{name}.json").read_text()), **numbers}
        return results


# --- (a): a fresh jit per training -----------------------------------------------------------------
def fresh_jit(case: dict, spec: SweepSpec) -> dict:
    module = jrl.algorithms.get(spec.algo).module
    env, env_params = jrl.make(spec.env)
    configs = spec.configs()
    members = [(c, s) for c in range(len(configs)) for s in spec.seeds]
    picked = spread(len(members), case["sample_a"])
    compile_s = run_s = 0.0
    for m in picked:
        c, seed = members[m]
        key = train_key(seed)
        start = time.perf_counter()
        compiled = jax.jit(module.make_train(configs[c], env, env_params)).lower(key).compile()
        compile_s += time.perf_counter() - start
        start = time.perf_counter()
        jax.block_until_ready(compiled(key))
        run_s += time.perf_counter() - start
    scale = len(members) / len(picked)
    return {"compile_s": compile_s * scale, "run_s": run_s * scale, "timed": len(picked), "of": len(members)}


# --- (b): one compiled vmap over the seeds, a loop over the configurations -------------------------
def one_compiled_loop(case: dict, spec: SweepSpec) -> dict:
    module = jrl.algorithms.get(spec.algo).module
    env, env_params = jrl.make(spec.env)
    configs = spec.configs()
    keys = train_keys(spec.seeds)
    num_seeds = len(spec.seeds)

    def hyperparams(config):
        return jax.tree.map(lambda x: np.full((num_seeds,), x, np.float32), config.hyperparams())

    start = time.perf_counter()
    train = jax.vmap(module.make_train(spec.config, env, env_params))
    compiled = jax.jit(train).lower(keys, hyperparams(configs[0])).compile()
    compile_s = time.perf_counter() - start
    picked = spread(len(configs), case["sample_b"])
    outputs = {}
    start = time.perf_counter()
    for c in picked:
        outputs[c] = jax.block_until_ready(compiled(keys, hyperparams(configs[c])))
    run_s = time.perf_counter() - start
    scale = len(configs) / len(picked)
    return {"compile_s": compile_s, "run_s": run_s * scale, "timed": len(picked), "of": len(configs), "out": outputs}


def differing_members(spec: SweepSpec, loop: dict, swept: dict) -> tuple[int, int]:
    """How many of (b)'s members differ from the sweep's (learning curve, and for tabular runs the
    exact final return), of how many compared."""
    env, env_params = jrl.make(spec.env)
    differ = total = 0
    for c, out in loop["out"].items():
        curve = np.asarray(out.metrics[spec.curve], np.float64)
        same = [np.array_equal(curve[s], swept["curves"][c][s], equal_nan=True) for s in range(len(curve))]
        if spec.algo == "q_learning":
            final = exact_greedy_returns(env, env_params, np.asarray(out.q_table))
            same = [ok and final[s] == swept["final_returns"][c][s] for s, ok in enumerate(same)]
        differ += len(same) - sum(same)
        total += len(same)
    return differ, total


def identical(one: dict, two: dict) -> bool:
    return all(
        np.array_equal(one[k], two[k], equal_nan=k != "diverged") for k in ("final_returns", "curves", "diverged")
    )


# --- report ------------------------------------------------------------------------------------------
def swept(info: dict) -> str:
    return f"one call; its batches ran {info['batches_s']:.2f} s of the run"


def report(name: str, case: dict, spec: SweepSpec, sweeps: dict, a: dict, b: dict) -> None:
    """The table of one case. The ratios use the sweep on the loops' device: the 1-host-device
    sweep on a CPU machine, the accelerator sweep (``sweeps["gpu"]``) where there is one."""
    one, two, gpu = sweeps[1], sweeps[2], sweeps.get("gpu")
    base = gpu or one
    num_configs, num_seeds = len(spec.points()), len(spec.seeds)
    print(
        f"\n== {name} on {spec.env}: {num_configs} configurations x {num_seeds} seeds = "
        f"{num_configs * num_seeds:,} trainings; axes {', '.join(spec.axes)}; default config with {case['changed']}"
    )
    for line in one["plan"]:
        print(f"   {line}")
    print(
        f"   memory: peak RSS grew by {one['peak_rss_growth_mib']:,.0f} MiB "
        f"during the 1-device sweep ({two['peak_rss_growth_mib']:,.0f} MiB with 2 devices)"
    )
    sweep_label = f"jrl.sweep, {gpu['backend']}" if gpu else "jrl.sweep, 1 host device"
    rows = [
        ("jrl.sweep, 1 host device", one["compile_s"], one["total_s"] - one["compile_s"], swept(one), None),
        ("jrl.sweep, 2 host devices", two["compile_s"], two["total_s"] - two["compile_s"], swept(two), None),
    ]
    if gpu:
        rows.append((sweep_label, gpu["compile_s"], gpu["total_s"] - gpu["compile_s"], swept(gpu), None))
    rows += [
        (
            "(a) make_train + fresh jit each",
            a["compile_s"],
            a["run_s"],
            f"EXTRAPOLATED from {a['timed']} of {a['of']:,} trainings",
            TARGET_A,
        ),
        (
            f"(b) one compiled vmap of {num_seeds} seeds, per config",
            b["compile_s"],
            b["run_s"],
            "all configs timed"
            if b["timed"] == b["of"]
            else f"run EXTRAPOLATED from {b['timed']} of {b['of']} configs",
            TARGET_B,
        ),
    ]
    sweep_run = base["total_s"] - base["compile_s"]
    print(
        f"{'arm':<52} | {'compile s':>9} | {'run s':>9} | {'total s':>9} | {'total / sweep':>13} | "
        f"{'run / sweep':>11} | {'target':>16} | how"
    )
    for label, compile_s, run_s, how, target in rows:
        total = compile_s + run_s
        ratio = run_ratio = verdict = ""
        if target is not None:
            ratio, run_ratio = f"{total / base['total_s']:.1f}x", f"{run_s / sweep_run:.1f}x"
            verdict = f">= {target:.0f}x: {'met' if total / base['total_s'] >= target else 'NOT met'}"
        print(
            f"{label:<52} | {compile_s:>9.2f} | {run_s:>9.2f} | {total:>9.2f} | {ratio:>13} | {run_ratio:>11} | "
            f"{verdict:>16} | {how}"
        )
    print(f"   ratios against: {sweep_label} (compile + run = {base['total_s']:.2f} s)")
    print(
        f"   2 vs 1 host devices: {one['total_s'] / two['total_s']:.2f}x faster in total, "
        f"{(one['total_s'] - one['compile_s']) / (two['total_s'] - two['compile_s']):.2f}x on the run; "
        f"results bit-identical: {'yes' if identical(one, two) else 'NO'}"
    )
    differ, compared = b["differ"]
    print(
        f"   (b)'s members against the sweep's, bit for bit: {compared - differ} of {compared} equal"
        + (" (vmapped matmuls may round differently with fewer members per call)" if differ else "")
    )
    print(f"   the sweep's {one['best']}")
    if gpu:
        print(
            f"   on {gpu['backend']} ({gpu['devices']} device(s)): {num_configs / gpu['total_s']:.1f} configurations/s "
            f"including compile, {num_configs / (gpu['total_s'] - gpu['compile_s']):.1f} without"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run, NOT results")
    parser.add_argument("--only", choices=["q_learning", "dqn"], help="one case")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child.split(","), args.quick, Path(args.child_out))
        return
    started = time.perf_counter()
    names = [args.only] if args.only else ["q_learning", "dqn"]
    if args.quick:
        print("QUICK SMOKE RUN: tiny sizes, NOT results")
    print(
        f"jax {jax.__version__}, {jax.default_backend()}, {os.cpu_count()} CPU cores, "
        f"PJRT_NPROC={os.environ['PJRT_NPROC']}; the loops (a) and (b) run on 1 device; "
        f"load average {os.getloadavg()[0]:.2f} (other jobs on the machine slow every arm)"
    )
    sweeps: dict = {d: run_sweep_child(names, args.quick, d) for d in (1, 2)}
    if jax.default_backend() == "gpu":
        sweeps["gpu"] = run_sweep_child(names, args.quick, None)
    for name in names:
        case = cases(args.quick)[name]
        spec = resolve(case)
        a = fresh_jit(case, spec)
        b = one_compiled_loop(case, spec)
        b["differ"] = differing_members(spec, b, sweeps.get("gpu", sweeps[1])[name])
        report(name, case, spec, {d: sweeps[d][name] for d in sweeps}, a, b)
    print(
        f"\nthe whole benchmark took {(time.perf_counter() - started) / 60:.1f} min; "
        f"load average at the end {os.getloadavg()[0]:.2f}"
    )
    if args.quick:
        print("QUICK SMOKE RUN: tiny sizes, NOT results")


if __name__ == "__main__":
    main()
