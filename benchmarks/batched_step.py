"""Batched stepping throughput: ``env.step_batch`` (one key for the batch) against ``vmap(step)``
over split keys and against gymnax, in the same run; plus the PRNG implementation's share.

Every contender steps ``--num-envs`` environments (16,384 by default) with random actions for
``--steps`` steps inside ONE ``jax.jit(lax.scan(...))`` call; throughput is environment steps per
second (environments x steps / seconds, best of ``--repeats`` calls), compile time measured apart.
Each step draws the actions for the whole batch with one ``jax.random.randint`` call (the same
for every contender: it is the harness, not the environment) and sums the rewards (so that no
step can be skipped). Contenders per environment:

- ``jrl step_batch``: ``env.step_batch(key, states, actions, params)``, one key per step for the
  whole batch; the environment draws its randomness (resets, slips, noise) for all N in one call.
- ``jrl vmap(step)``: ``jax.vmap(env.step)`` over ``jax.random.split(key, N)``: one key per
  environment per step, as gymnax is used.
- ``gymnax``: ``gymnax.make(id)``'s ``env.step`` (with its auto-reset), vmapped over split keys:
  the way gymnax is used. Its FrozenLake is ``FrozenLake-misc``.

CartPole-v1, Acrobot-v1, MountainCar-v0 and FrozenLake-v1 (slippery 4x4); the PRNG table repeats
the two jrl paths for CartPole and FrozenLake with typed keys of each implementation
(``jax.random.key(seed, impl=...)``: ``threefry2x32``, the default, ``rbg``, ``unsafe_rbg``).
The profile times a batched CartPole step piece by piece (the dynamics alone, the draw alone, the
whole ``step_batch``), and the alternative of drawing uniforms for at most an eighth of the batch
and computing resets only where an episode ended (found with ``nonzero``, gathered, scattered
back) instead of for every environment; it assumes at most N/8 episodes end in a step, true of
CartPole's random-action episodes after the first few steps, so it measures the gain such a path
could give, not a complete implementation (which needs a fallback when more end at once).

    python benchmarks/batched_step.py            # writes benchmarks/results/batched_step.{csv,txt}
    python benchmarks/batched_step.py --quick    # a smoke run (1,024 environments, few steps)
"""

from __future__ import annotations

import argparse
import csv
import functools
import io
import os
import platform
from contextlib import redirect_stdout
from pathlib import Path

import jax
import jax.numpy as jnp

import jrl
from jrl.experiment import timed

RESULTS = Path(__file__).parent / "results"
IDS = {"CartPole-v1": "CartPole-v1", "Acrobot-v1": "Acrobot-v1", "MountainCar-v0": "MountainCar-v0"}
IDS["FrozenLake-v1"] = "FrozenLake-misc"  # gymnax's id
IMPLS = ("threefry2x32", "rbg", "unsafe_rbg")


def _loop(step_fn, num_actions: int, num_envs: int, num_steps: int):
    """``run(states, key) -> (states, total reward)``: ``num_steps`` steps of ``step_fn(key,
    states, actions) -> (states, reward)`` in one ``lax.scan``."""

    def run(states, key):
        def body(carry, _):
            states, key, total = carry
            key, key_action, key_step = jax.random.split(key, 3)
            actions = jax.random.randint(key_action, (num_envs,), 0, num_actions)
            states, reward = step_fn(key_step, states, actions)
            return (states, key, total + reward), None

        (states, _, total), _ = jax.lax.scan(body, (states, key, jnp.zeros(num_envs)), None, num_steps)
        return states, total

    return run


def jrl_contender(env_id: str, path: str, num_envs: int, num_steps: int, impl: str):
    env, params = jrl.make(env_id)
    key = jax.random.key(0, impl=impl)
    _, states = env.reset_batch(key, num_envs, params)
    vstep = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def step(k, s, a):
        if path == "batched":
            _, s, reward, *_ = env.step_batch(k, s, a, params)
        else:
            _, s, reward, *_ = vstep(jax.random.split(k, num_envs), s, a, params)
        return s, reward

    return _loop(step, env.action_space(params).n, num_envs, num_steps), states, key


def gymnax_contender(env_id: str, num_envs: int, num_steps: int):
    import gymnax

    env, params = gymnax.make(IDS[env_id])
    key = jax.random.key(0)
    _, states = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key, num_envs), params)
    vstep = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def step(k, s, a):
        _, s, reward, *_ = vstep(jax.random.split(k, num_envs), s, a, params)
        return s, reward

    return _loop(step, env.action_space(params).n, num_envs, num_steps), states, key


def measure(contender, repeats: int) -> dict:
    run, states, key = contender
    timing = timed(run, states, key, repeats=repeats)
    return {"compile_s": timing.compile_seconds, "seconds": timing.run_seconds}


def profile_cartpole(num_envs: int, num_steps: int, repeats: int) -> list[tuple[str, float]]:
    """Seconds per step of a batched CartPole step, piece by piece (each its own scan)."""
    env, params = jrl.make("CartPole-v1")
    key = jax.random.key(0)
    _, states = env.reset_batch(key, num_envs, params)
    actions = jnp.zeros(num_envs, jnp.int32)
    dynamics = jax.vmap(env.step_env_from_uniform, in_axes=(None, 0, 0, None))
    reset = jax.vmap(env.reset_from_uniform, in_axes=(0, None))
    no_u = jnp.zeros((0,), jnp.float32)

    def only_dynamics(k, s):
        return dynamics(no_u, s, actions, params)[1]

    def only_draw(k, s):
        _, u_reset = env.batch_uniforms(k, num_envs)
        return s.replace(x=s.x + 0.0 * u_reset[:, 0])  # keeps the draw (x * 0.0 is not folded away)

    def full(k, s):
        return env.step_batch(k, s, actions, params)[1]

    def per_env(k, s):
        return jax.vmap(env.step, in_axes=(0, 0, 0, None))(jax.random.split(k, num_envs), s, actions, params)[1]

    def resets_where_ended(k, s, draw_all=False):
        """Resets computed only where an episode ended: up to N/8 of them, gathered and scattered;
        their uniforms drawn for N/8 environments, or (``draw_all``) for all N and gathered."""
        _, new, _, terminated, truncated, _ = dynamics(no_u, s, actions, params)
        done = terminated | truncated
        budget = max(1, num_envs // 8)
        index = jnp.nonzero(done, size=budget, fill_value=num_envs)[0]
        if draw_all:
            u = env.batch_uniforms(k, num_envs)[1][jnp.minimum(index, num_envs - 1)]
        else:
            u = jax.random.uniform(k, (budget, 4))
        _, fresh = reset(u, params)
        put = lambda full, part: full.at[index].set(part, mode="drop")  # noqa: E731
        return jax.tree_util.tree_map(put, new, fresh)

    pieces = [
        ("dynamics only (vmap(step_env_from_uniform), no draw, no reset)", only_dynamics),
        ("the draw alone: N x 4 uniforms (batch_uniforms)", only_draw),
        ("step_batch: dynamics + the draw + every reset, selected where done", full),
        (
            "variant: N x 4 uniforms, resets only where done (nonzero, gather/scatter)",
            functools.partial(resets_where_ended, draw_all=True),
        ),
        ("alternative: N/8 x 4 uniforms, resets only where done (nonzero, gather/scatter)", resets_where_ended),
        ("vmap(step) over split keys (one key per environment)", per_env),
    ]
    out = []
    for name, fn in pieces:

        def run(s, k, fn=fn):
            def body(carry, _):
                s, k = carry
                k, sub = jax.random.split(k)
                return (fn(sub, s), k), None

            return jax.lax.scan(body, (s, k), None, num_steps)[0]

        timing = timed(run, states, key, repeats=repeats)
        out.append((name, timing.run_seconds / num_steps))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-envs", type=int, default=16384)
    parser.add_argument("--steps", type=int, default=200, help="steps per timed call")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1,024 environments, 20 steps")
    parser.add_argument("--no-write", action="store_true", help="print only (do not write the results)")
    parser.add_argument("--profile-only", action="store_true", help="only the CartPole profile (printed, not written)")
    args = parser.parse_args()
    if args.quick:
        args.num_envs, args.steps, args.repeats, args.no_write = 1024, 20, 1, True
    n, t = args.num_envs, args.steps
    text = io.StringIO()
    if args.profile_only:
        for name, seconds in profile_cartpole(n, t, args.repeats):
            print(f"| {name} | {seconds * 1e6:.0f} | {seconds * 1e9 / n:.2f} |")
        return

    def say(line: str = "") -> None:
        print(line, flush=True)
        text.write(line + "\n")

    say(
        f"batched stepping: {n:,} environments, {t} steps per call, best of {args.repeats}; "
        f"{jax.default_backend()} ({jax.devices()[0].device_kind}), {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}; jax {jax.__version__}, {platform.python_version()}"
    )
    rows = []
    for env_id in IDS:
        with redirect_stdout(io.StringIO()):
            contenders = {
                "jrl step_batch": jrl_contender(env_id, "batched", n, t, "threefry2x32"),
                "jrl vmap(step)": jrl_contender(env_id, "per_env", n, t, "threefry2x32"),
                "gymnax": gymnax_contender(env_id, n, t),
            }
        for name, contender in contenders.items():
            rows.append({"table": "paths", "env": env_id, "contender": name, "impl": "threefry2x32"})
            rows[-1] |= measure(contender, args.repeats)
    for env_id in ("CartPole-v1", "FrozenLake-v1"):
        for impl in IMPLS:
            for path, name in (("batched", "jrl step_batch"), ("per_env", "jrl vmap(step)")):
                if impl == "threefry2x32":
                    continue  # measured above
                rows.append({"table": "prng", "env": env_id, "contender": name, "impl": impl})
                rows[-1] |= measure(jrl_contender(env_id, path, n, t, impl), args.repeats)
    for r in rows:
        r["steps_per_s"] = n * t / r["seconds"]
        r["num_envs"], r["steps"] = n, t

    say("\n| environment | contender | M steps/s | vs gymnax | compile (s) |")
    say("|---|---|---:|---:|---:|")
    rate = {(r["env"], r["contender"], r["impl"]): r["steps_per_s"] for r in rows}
    for r in rows:
        if r["table"] == "paths":
            ratio = r["steps_per_s"] / rate[(r["env"], "gymnax", "threefry2x32")]
            say(
                f"| {r['env']} | {r['contender']} | {r['steps_per_s'] / 1e6:.1f} | {ratio:.2f}x | {r['compile_s']:.2f} |"
            )
    say("\nPRNG implementation (typed keys, jax.random.key(seed, impl=...)):\n")
    say("| environment | contender | threefry2x32 | rbg | unsafe_rbg |")
    say("|---|---|---:|---:|---:|")
    for env_id in ("CartPole-v1", "FrozenLake-v1"):
        for name in ("jrl step_batch", "jrl vmap(step)"):
            cells = " | ".join(f"{rate[(env_id, name, impl)] / 1e6:.1f}" for impl in IMPLS)
            say(f"| {env_id} | {name} | {cells} |")
    say("\n(M steps/s)")
    cart = rate[("CartPole-v1", "jrl step_batch", "threefry2x32")] / rate[("CartPole-v1", "gymnax", "threefry2x32")]
    lake = rate[("FrozenLake-v1", "jrl step_batch", "threefry2x32")] / rate[("FrozenLake-v1", "gymnax", "threefry2x32")]
    say(f"targets: CartPole step_batch >= 1.5x gymnax: {cart:.2f}x; FrozenLake >= 3x gymnax-style: {lake:.2f}x")

    say(f"\nWhere the time goes in a batched CartPole step ({n:,} environments, microseconds per step):\n")
    say("| piece | us per step | ns per environment |")
    say("|---|---:|---:|")
    for name, seconds in profile_cartpole(n, t, args.repeats):
        say(f"| {name} | {seconds * 1e6:.0f} | {seconds * 1e9 / n:.2f} |")
    say(f"\nload average {os.getloadavg()[0]:.2f}")

    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        fields = ["table", "env", "contender", "impl", "num_envs", "steps", "steps_per_s", "seconds", "compile_s"]
        with open(RESULTS / "batched_step.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            for r in rows:
                writer.writerow({k: (f"{r[k]:.6g}" if isinstance(r[k], float) else r[k]) for k in fields})
        (RESULTS / "batched_step.txt").write_text(text.getvalue())
        print(f"wrote {RESULTS / 'batched_step.csv'} and {RESULTS / 'batched_step.txt'}")


if __name__ == "__main__":
    main()
