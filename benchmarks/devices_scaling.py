"""One run over several devices: throughput and time to solve against the number of devices.

Every measurement goes through ``jrl.experiment.train``, the path ``jrl train --devices N`` takes,
and reads the compile and run seconds the run directory records (``metadata.json``). For each
device count D of 1, 2, 4 and 8 that this machine has (all in one process, one after the other,
so a noisy spell of a shared machine hits them alike):

**Environment steps per second** (PQN, ``pqn.default_config("CartPole-v1")``: 32 environments x
64 steps per iteration, 4 epochs of 16 minibatches; ``ITERATIONS`` iterations, no in-loop
evaluation, no early stop):

- weak scaling: fixed work per device, ``num_envs = 32 * D`` (each device steps 32 environments and
  learns from minibatches of the same size as on one device);
- strong scaling: fixed total work, ``num_envs = 32`` split over the D devices.

**Time to solve** (PQN, the same default with ``stop_return=500``: it stops at its first in-loop
greedy evaluation of 500, one every 10 iterations; all 100 iterations otherwise): compile + run,
and the environment steps taken, on held-out seeds ``SEEDS``, one run each:

- weak scaling: ``num_envs = 32 * D`` (each iteration collects and learns from D times the data;
  the same iterations, schedules and evaluations);
- strong scaling: the default as it is, split over the D devices.

    python3 benchmarks/devices_scaling.py --host-devices 4     # CPU: 4 devices forced on the host
    python3 benchmarks/devices_scaling.py                      # a GPU/TPU machine: its own devices
    python3 benchmarks/devices_scaling.py --quick              # a smoke run: tiny budgets, NOT results

On a CPU the forced host devices (``--host-devices``) share the machine's cores: D devices cannot
run D times faster than one, and the table says how many cores there were. The table (Markdown) is
printed and written to ``benchmarks/results/devices_scaling.csv``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import tempfile
from pathlib import Path

ITERATIONS = 60
SEEDS = (1000, 1001)
RESULTS = Path(__file__).resolve().parent / "results" / "devices_scaling.csv"


def measure(algo: str, env_id: str, config: dict, devices: int, seed: int) -> dict:
    """Train one run through ``jrl.experiment.train``; its recorded seconds and summary."""
    from jrl.experiment import RunSettings, RunSpec, train

    spec = RunSpec.resolve(algo, env_id, [seed], config, devices=devices)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        summary = train(spec, run_dir, RunSettings(chunk_logs=spec.config.num_logs(), eval_episodes=10), progress=False)
        session = json.loads((run_dir / "metadata.json").read_text())["sessions"][0]
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    ran = [r for r in rows if not r.get("stopped")]  # intervals that trained (stop_return skips the rest)
    return {
        "compile_s": session["compile_seconds"],
        "run_s": session["run_seconds"],
        "env_steps": ran[-1]["env_steps"],
        "greedy_return": summary["mean"]["evaluation"]["mean_return"],
        "solved": any((r.get("eval_return") or 0.0) >= 500.0 for r in rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host-devices", type=int, help="split the CPU into N JAX devices (before JAX starts)")
    parser.add_argument("--quick", action="store_true", help="tiny budgets: a smoke run, NOT results")
    args = parser.parse_args()
    if args.host_devices:
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={args.host_devices}".strip()
    import jax

    from jrl.algorithms import pqn

    available = jax.device_count()
    counts = [d for d in (1, 2, 4, 8) if d <= available]
    platform = jax.devices()[0].platform
    iterations = 4 if args.quick else ITERATIONS
    seeds = SEEDS[:1] if args.quick else SEEDS
    base = pqn.default_config("CartPole-v1")

    results = []
    for devices in counts:
        for scaling in ("weak", "strong"):
            num_envs = base.num_envs * (devices if scaling == "weak" else 1)
            config = {
                "num_envs": num_envs,
                "num_steps": iterations,
                "log_interval": iterations,
                "eval_episodes": 0,
                "stop_return": None,
            }
            numbers = measure("pqn", "CartPole-v1", config, devices, 0)
            numbers["steps_per_s"] = numbers["env_steps"] / numbers["run_s"]
            results.append({"measure": "throughput", "scaling": scaling, "devices": devices, **numbers})
            print(f"throughput {scaling} D={devices}: {numbers['steps_per_s']:,.0f} env steps/s", flush=True)
            for seed in seeds:
                config = {"num_envs": num_envs, "stop_return": 500.0}
                if args.quick:
                    config |= {"num_steps": 4, "log_interval": 2}
                numbers = measure("pqn", "CartPole-v1", config, devices, seed)
                numbers["total_s"] = numbers["compile_s"] + numbers["run_s"]
                results.append({"measure": "solve", "scaling": scaling, "devices": devices, "seed": seed, **numbers})
                print(f"solve {scaling} D={devices} seed {seed}: {numbers['total_s']:.1f} s", flush=True)

    def pick(measure: str, scaling: str, devices: int) -> list[dict]:
        return [r for r in results if (r["measure"], r["scaling"], r["devices"]) == (measure, scaling, devices)]

    print()
    shared = f", sharing this machine's {os.cpu_count()} CPU cores" if platform == "cpu" else ""
    print(f"Devices: {available} x {platform}{shared}")
    if args.quick:
        print("QUICK RUN: tiny budgets, NOT results")
    print()
    print(
        "| scaling | devices | env steps/s | vs 1 device | time to solve: median total s (compile + run) "
        "| median env steps to solve | solved | final greedy return (mean over seeds) |"
    )
    print("|---|---:|---:|---:|---|---:|---:|---:|")
    for scaling in ("weak", "strong"):
        (one,) = pick("throughput", scaling, 1)
        for devices in counts:
            (row,) = pick("throughput", scaling, devices)
            solves = pick("solve", scaling, devices)
            total = statistics.median(r["total_s"] for r in solves)
            compile_s = statistics.median(r["compile_s"] for r in solves)
            run_s = statistics.median(r["run_s"] for r in solves)
            steps = statistics.median(r["env_steps"] for r in solves)
            greedy = statistics.mean(r["greedy_return"] for r in solves)
            print(
                f"| {scaling} | {devices} | {row['steps_per_s']:,.0f} | {row['steps_per_s'] / one['steps_per_s']:.2f}x "
                f"| {total:.1f} ({compile_s:.1f} + {run_s:.1f}) | {steps:,.0f} "
                f"| {sum(r['solved'] for r in solves)}/{len(solves)} | {greedy:.1f} |"
            )
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        with RESULTS.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=sorted({key for row in results for key in row}))
            writer.writeheader()
            writer.writerows(results)
        print(f"\nwritten: {RESULTS}")


if __name__ == "__main__":
    main()
