"""Shared pieces of the PPO and PQN benchmarks: running a peer's script from its checkout unchanged,
and the per-seed Markdown tables. Not a benchmark itself (``benchmarks/ppo_cartpole.py`` and
``benchmarks/pqn_cartpole.py`` import it).

Peers are run as their authors wrote them, against today's libraries, through shims that change
no computation:

- gymnax 1.0.1's ``step`` returns six values ``(obs, state, reward, terminated, truncated, info)``;
  rejax 0.1.3, PureJaxRL and purejaxql unpack the five of the gymnax they were written against,
  whose ``done`` already included CartPole's 500-step time limit. ``five_value_gymnax`` hands them
  ``dqn_cartpole.TruncationAsDone`` environments (``done = terminated | truncated``): exactly the
  environment they were written and tuned for.
- imports a script needs only for features these benchmarks do not use (wandb, hydra, Brax, navix)
  are replaced by empty modules; ``stub_modules`` installs them only where the real one is absent.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from collections.abc import Callable

import numpy as np
from dqn_cartpole import TruncationAsDone

SOLVED = 475.0
EVAL_EPISODES = 100
EVAL_SEED = 10_000  # evaluation episodes seeded apart from every training seed
GYMNAX_1_INFO = ("final_observation", "terminated", "truncated")  # info entries new in gymnax 1.x


def five_value_gymnax() -> types.SimpleNamespace:
    """A stand-in for the ``gymnax`` module whose ``make`` returns a five-value environment."""
    import gymnax

    def make(env_id: str, **kwargs):
        env, env_params = gymnax.make(env_id, **kwargs)
        return TruncationAsDone(env), env_params

    return types.SimpleNamespace(**{**vars(gymnax), "make": make})


def five_value_log_wrapper() -> type:
    """gymnax 1.x's ``purerl.LogWrapper`` with gymnax 0.0.x's five-value ``step`` (``done``
    merged) and info (without the ``final_observation``, ``terminated`` and ``truncated`` entries
    gymnax 1.x added: purejaxql averages every info entry over ``[T, N]`` masks, which an
    observation-shaped entry breaks), for scripts that wrap gymnax's own ``LogWrapper``."""
    import jax.numpy as jnp
    from gymnax.wrappers.purerl import LogWrapper

    class FiveValueLogWrapper(LogWrapper):
        def step(self, key, state, action, params=None):
            obs, state, reward, terminated, truncated, info = super().step(key, state, action, params)
            info = {k: v for k, v in info.items() if k not in GYMNAX_1_INFO}
            return obs, state, reward, jnp.logical_or(terminated, truncated), info

    return FiveValueLogWrapper


def stub_modules(*names: str, **attributes: dict) -> None:
    """Empty modules for ``names`` (dotted names create their parents), unless importable;
    ``attributes[name]`` (dots as ``__``) sets names a ``from X import Y`` needs at import time."""
    for name in names:
        try:
            importlib.import_module(name)
            continue
        except ImportError:
            pass
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            dotted = ".".join(parts[:i])
            module = sys.modules.setdefault(dotted, types.ModuleType(dotted))
            if i > 1:
                setattr(sys.modules[".".join(parts[: i - 1])], parts[i - 1], module)
        for key, value in attributes.get(name.replace(".", "__"), {}).items():
            setattr(sys.modules[name], key, value)


def load_script(path: str, name: str) -> types.ModuleType:
    """Import the Python file ``path`` as module ``name``, with its own folder on ``sys.path``
    (PureJaxRL's ``ppo.py`` imports its sibling ``wrappers.py``)."""
    if not os.path.isfile(path):
        raise SystemExit(f"{path!r}: no such file (see the module docstring for the checkout)")
    folder = os.path.dirname(os.path.abspath(path))
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def print_tables(rows: list[tuple[str, int, dict]], algo: str, env_id: str, reference: str) -> dict[str, dict]:
    """The per-seed table, then one row per contender: median and slowest total, ratios to
    ``reference``'s median, seeds solved. ``rows``: (contender, seed, {compile_s, run_s, steps,
    gym}). Returns the per-contender summary."""
    print(f"\n{algo} on {env_id}, per seed: compile + run, greedy return over {EVAL_EPISODES} Gymnasium episodes\n")
    print("| contender | seed | compile s | run s | total s | env steps | Gymnasium return | solved |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for name, seed, r in rows:
        total = r["compile_s"] + r["run_s"]
        solved = "yes" if r["gym"] >= SOLVED else "**no**"
        print(
            f"| {name} | {seed} | {r['compile_s']:.1f} | {r['run_s']:.1f} | {total:.1f} | {r['steps']:,} | "
            f"{r['gym']:.1f} | {solved} |"
        )
    summary: dict[str, dict] = {}
    for name, _, r in rows:
        s = summary.setdefault(name, {"total": [], "compile": [], "run": [], "solved": 0})
        s["total"].append(r["compile_s"] + r["run_s"])
        s["compile"].append(r["compile_s"])
        s["run"].append(r["run_s"])
        s["solved"] += r["gym"] >= SOLVED
    ours = float(np.median(summary[reference]["total"]))
    print(
        f"\n| contender | median compile s | median run s | median total s | slowest total s | "
        f"median / {reference} median | solved |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, s in summary.items():
        median = float(np.median(s["total"]))
        print(
            f"| {name} | {np.median(s['compile']):.1f} | {np.median(s['run']):.1f} | {median:.1f} | "
            f"{max(s['total']):.1f} | {median / ours:.2f}x | {s['solved']}/{len(s['total'])} |"
        )
    return summary


def check_target(summary: dict, ours: str, peer: str, factor: float) -> str:
    """'met' / 'NOT met' for: ``ours``' median total <= ``peer``'s median total / ``factor``, and
    also for its slowest seed."""
    mine, theirs = np.median(summary[ours]["total"]), np.median(summary[peer]["total"])
    slowest = max(summary[ours]["total"])
    ratio, worst = theirs / mine, theirs / slowest
    verdict = "met" if ratio >= factor else "NOT met"
    return (
        f"{peer} median / {ours} median = {ratio:.2f}x (target >= {factor:g}x: {verdict}); "
        f"against {ours}'s slowest seed {worst:.2f}x"
    )


def jrl_commit(algorithm: str) -> str:
    """The checkout's commit, and whether ``jrl/algorithms/<algorithm>.py`` differs from it (the
    defaults are read at run time: a report should say which ones it measured)."""
    folder = os.path.dirname(os.path.abspath(__file__))
    commit = os.popen(f"git -C {folder} rev-parse --short HEAD 2>/dev/null").read().strip() or "unknown"
    dirty = os.popen(f"git -C {folder} status --porcelain -- ../jrl/algorithms/{algorithm}.py 2>/dev/null").read()
    return commit + (f" (jrl/algorithms/{algorithm}.py has uncommitted changes)" if dirty.strip() else "")


def greedy_gymnasium_return(policy: Callable, params, env_id: str) -> float:
    """Mean greedy return of ``policy(params, obs, key)`` over EVAL_EPISODES Gymnasium episodes."""
    from jrl.wrappers import evaluate_in_gymnasium

    return float(evaluate_in_gymnasium(policy, params, env_id, num_episodes=EVAL_EPISODES, seed=EVAL_SEED).mean())
