"""DQN on ``RandomLake-v0`` against the best any policy can do on the same maps.

Each RandomLake map is a small tabular MDP (``size * size`` cells x 4 actions, FrozenLake's rules
as ``jrl/envs/random_lake.py`` implements them), so the best achievable probability of reaching the
goal from the start is computable exactly. ``success_probabilities`` does it on the host in numpy
float64 by finite-horizon backward induction over the episode's time limit (undiscounted: the
value is the probability of reaching the goal within the limit, which is exactly the expected
return ``jrl.evaluate`` measures), or, with ``horizon=None``, by value iteration to convergence
(the infinite-horizon value, an upper bound). ``policy="random"`` gives the uniform random
policy's success probability instead: the floor.

A policy that sees only its position (what a Q-table indexed by the agent's cell can represent)
follows one fixed path on every map; ``best_fixed_route`` finds the best shortest such path on the
evaluation maps themselves, the ceiling of a map-agnostic learner taking a shortest route.

The script trains ``dqn.default_config("RandomLake-v0")`` on one seed, evaluates the greedy policy
on ``--episodes`` fresh maps with ``jrl.evaluate`` keyed by ``jax.random.key(--eval-seed)``,
rebuilds those very maps (``maps_of_evaluation``: the resets ``jrl.evaluate`` does from that key)
and prints the DQN success rate, the mean per-map optimum, their ratio, the random policy's
exact and sampled success rates and the best fixed route's on the same maps. Every random number
comes from ``--seed`` and ``--eval-seed``.

    python experiments/random_lake_dqn.py                  # train one seed, compare (about 4 minutes)
    python experiments/random_lake_dqn.py --check          # validate the solver only, no training
    python experiments/random_lake_dqn.py --reference-only # optimum and random floor, no training

The registered ``RandomLake-v0`` is *not* slippery (``is_slippery=False``, as ``jrl.make`` builds
it); there every solvable map has optimum 1.0 within the 256-step limit (the shortest path is at
most 62 steps). ``--slippery`` evaluates the slippery variant's references (success rate 1/3) for
the same maps, which the trained agent does not face.
"""

from __future__ import annotations

import argparse
import itertools
from collections import deque

import jax
import jax.numpy as jnp
import numpy as np

import jrl
from jrl.algorithms import dqn
from jrl.experiment import timed, train_key
from jrl.planning import value_iteration

ENV_ID = "RandomLake-v0"
#: FrozenLake's moves of actions 0 left, 1 down, 2 right, 3 up (row change, column change).
MOVES = ((0, -1), (1, 0), (0, 1), (-1, 0))


def lake_model(size: int, is_slippery: bool, success_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """``(next_cell int [S, A, K], probs float64 [A, K])`` for ``S = size * size`` cells.

    Slippery: the outcomes of action ``a`` are the moves ``(a - 1) % 4, a, (a + 1) % 4`` with
    probabilities ``(1 - p) / 2, p, (1 - p) / 2`` (``p = success_rate``); otherwise the one move
    ``a``. A move into the edge of the grid stays put. Which cells are holes does not change the
    moves, only where an episode ends, so one table serves every map.
    """
    outcomes = [((a - 1) % 4, a, (a + 1) % 4) if is_slippery else (a,) for a in range(4)]
    fail = (1.0 - success_rate) / 2.0
    probs = np.array(
        [[success_rate if b == a else fail for b in outs] if is_slippery else [1.0] for a, outs in enumerate(outcomes)]
    )
    next_cell = np.zeros((size * size, 4, len(outcomes[0])), np.int64)
    for row in range(size):
        for col in range(size):
            for a, outs in enumerate(outcomes):
                for k, b in enumerate(outs):
                    r = min(max(row + MOVES[b][0], 0), size - 1)
                    c = min(max(col + MOVES[b][1], 0), size - 1)
                    next_cell[row * size + col, a, k] = r * size + c
    return next_cell, probs


def success_probabilities(
    holes: np.ndarray,
    is_slippery: bool,
    success_rate: float,
    horizon: int | None,
    gamma: float = 1.0,
    policy: str = "optimal",
    tol: float = 1e-13,
    max_iters: int = 1_000_000,
) -> np.ndarray:
    """Value of the start cell of each map, float64 ``[M]``, for ``holes`` bool ``[M, n, n]``.

    The reward is 1 on entering the goal (bottom-right), holes and the goal end the episode, and
    ``gamma = 1`` makes the value the probability of reaching the goal. ``horizon``: the number of
    steps the episode may take (backward induction, ``V_t = max_a sum_k p_k (goal_k + gamma
    (1 - terminal_k) V_{t-1}(s'_k))`` from ``V_0 = 0``, so ``V_horizon`` is exact for a time limit
    that truncates after ``horizon`` steps); ``None``: iterate to convergence (the
    infinite-horizon value; the iterates increase monotonically to it from 0). ``policy``:
    ``"optimal"`` (max over actions) or ``"random"`` (the uniform mean over actions).
    """
    holes = np.asarray(holes, bool)
    num_maps, size = holes.shape[0], holes.shape[1]
    next_cell, probs = lake_model(size, is_slippery, success_rate)
    goal = np.zeros(size * size)
    goal[-1] = 1.0
    terminal = holes.reshape(num_maps, -1).copy()
    terminal[:, -1] = True
    # Entering a cell: reward goal[s'], continuation only from non-terminal s'.
    reward = np.einsum("ak,sak->sa", probs, goal[next_cell])  # [S, A], the same on every map
    weight = gamma * probs[None, None] * ~terminal[:, next_cell]  # [M, S, A, K]
    combine = np.max if policy == "optimal" else np.mean
    if policy not in ("optimal", "random"):
        raise ValueError(f"policy must be 'optimal' or 'random', got {policy!r}")
    values = np.zeros((num_maps, size * size))
    steps = horizon if horizon is not None else max_iters
    for _ in range(steps):
        q = reward[None] + np.sum(weight * values[:, next_cell], axis=-1)  # [M, S, A]
        new = combine(q, axis=-1)
        change = np.max(np.abs(new - values))
        values = new
        if horizon is None and change <= tol:
            break
    else:
        if horizon is None:
            raise ValueError(f"no convergence to tol={tol} in {max_iters} iterations (last change {change:.3g})")
    return values[:, 0]


def maps_of_evaluation(key: jax.Array, env, env_params, num_episodes: int) -> np.ndarray:
    """The maps ``jrl.evaluate(key, ..., num_episodes=num_episodes)`` plays, bool ``[N, n, n]``:
    it splits ``key`` into (reset, loop) keys and resets episode ``i`` with
    ``split(reset_key, num_episodes)[i]`` (``jrl/evaluate.py``)."""
    key_reset, _ = jax.random.split(key)
    _, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key_reset, num_episodes), env_params)
    return np.asarray(state.holes)


def desc_of(holes: np.ndarray) -> list[str]:
    """A RandomLake map as a FrozenLake ``desc`` (S start, G goal, H hole, F frozen)."""
    rows = [["H" if h else "F" for h in row] for row in np.asarray(holes, bool)]
    rows[0][0], rows[-1][-1] = "S", "G"
    return ["".join(row) for row in rows]


def shortest_path(holes: np.ndarray) -> int:
    """Steps of the shortest 4-neighbour path from start to goal through non-holes (BFS)."""
    n = holes.shape[0]
    dist = {(0, 0): 0}
    queue = deque([(0, 0)])
    while queue:
        r, c = queue.popleft()
        for dr, dc in MOVES:
            cell = (r + dr, c + dc)
            if 0 <= cell[0] < n and 0 <= cell[1] < n and not holes[cell] and cell not in dist:
                dist[cell] = dist[r, c] + 1
                queue.append(cell)
    return dist[n - 1, n - 1]


def best_fixed_route(maps: np.ndarray) -> tuple[float, str]:
    """The best map-agnostic shortest route on ``maps`` (bool ``[M, n, n]``): over every monotone
    (right/down) path from start to goal, the largest fraction of maps on which it crosses no hole.

    A policy that sees only its position (a position-indexed Q-table) follows one fixed path on
    every map, so this is what the best such policy taking a shortest route achieves on these
    maps (picked on the maps themselves, so a little optimistic). Returns ``(success, moves)``,
    ``moves`` the path as a string of ``R``/``D``."""
    maps = np.asarray(maps, bool)
    n = maps.shape[1]
    best, best_moves = -1.0, ""
    for downs in itertools.combinations(range(2 * (n - 1)), n - 1):
        rows, cols = [0], [0]
        for step in range(2 * (n - 1)):
            down = step in downs
            rows.append(rows[-1] + down)
            cols.append(cols[-1] + (not down))
        success = float(np.mean(~np.any(maps[:, rows, cols], axis=1)))
        if success > best:
            best, best_moves = success, "".join("D" if step in downs else "R" for step in range(2 * (n - 1)))
    return best, best_moves


def random_policy(params, obs, key):
    del params, obs
    return jax.random.randint(key, (), 0, 4)


def check_reference() -> None:
    """Validate ``success_probabilities``; raises AssertionError on a mismatch."""
    env, env_params = jrl.make(ENV_ID)
    maps = maps_of_evaluation(jax.random.key(7), env, env_params, 3)
    # 1. No holes: the goal is certain without a time limit, and all but certain within 256 steps.
    empty = np.zeros((1, 8, 8), bool)
    inf_empty = success_probabilities(empty, True, 1 / 3, None)[0]
    fin_empty = success_probabilities(empty, True, 1 / 3, 256)[0]
    assert abs(inf_empty - 1.0) < 1e-9 and 0.99 < fin_empty <= inf_empty, (inf_empty, fin_empty)
    print(f"no holes, slippery: infinite horizon {inf_empty:.9f}, 256 steps {fin_empty:.9f}")
    # 2. Not slippery: the goal is reached within H steps exactly when H >= the shortest path.
    for holes in maps:
        d = shortest_path(holes)
        short = success_probabilities(holes[None], False, 1 / 3, d - 1)[0]
        enough = success_probabilities(holes[None], False, 1 / 3, d)[0]
        assert short == 0.0 and enough == 1.0, (d, short, enough)
    print(f"not slippery: V_H = 1 from H = shortest path ({[shortest_path(h) for h in maps]}), 0 below")
    # 3. Against jrl.planning.value_iteration on FrozenLake-v1 built from the same maps.
    for holes in maps:
        desc = desc_of(holes)
        shown = []
        for slippery in (True, False):
            for gamma in (0.99, 1.0):
                _, fl_params = jrl.make("FrozenLake-v1", desc=desc, is_slippery=slippery)
                q_star = np.asarray(value_iteration(fl_params.mdp, gamma, tol=1e-10))
                ours = success_probabilities(holes[None], slippery, 1 / 3, None, gamma=gamma)[0]
                assert abs(q_star[0].max() - ours) < 1e-5, (desc, slippery, gamma, q_star[0].max(), ours)
                shown.append(f"{q_star[0].max():.6f}/{ours:.6f}")
        finite = success_probabilities(holes[None], True, 1 / 3, 256)[0]
        assert finite <= success_probabilities(holes[None], True, 1 / 3, None)[0] + 1e-12
        print(f"{'/'.join(desc)}")
        print(f"  value_iteration/ours, slippery gamma 0.99, 1, not slippery gamma 0.99, 1: {', '.join(shown)}")
        print(f"  slippery optimum within 256 steps (gamma 1): {finite:.6f}")
    # 4. The random policy's exact success rate against jrl.evaluate's episodes on the same maps.
    for slippery in (False, True):
        params = env_params.replace(is_slippery=jnp.bool_(slippery))
        key, n = jax.random.key(11), 2000
        sampled = np.asarray(jrl.evaluate(key, random_policy, None, env, params, num_episodes=n))
        exact = success_probabilities(maps_of_evaluation(key, env, params, n), slippery, 1 / 3, 256, policy="random")
        gap = abs(sampled.mean() - exact.mean())
        bound = 4 * np.sqrt(np.mean(exact * (1 - exact)) / n) + 1e-9
        assert gap < bound, (slippery, sampled.mean(), exact.mean())
        print(f"random policy, slippery={slippery}: exact {exact.mean():.4f}, sampled {sampled.mean():.4f} (n={n})")
    # 5. The best fixed route, on hand-made 4x4 maps (True = hole).
    maps = np.ones((2, 4, 4), bool)
    maps[:, 0, :] = maps[:, :, 3] = False  # the top row and the right column are frozen
    maps[1, 3, :] = False  # the second map also has its bottom row frozen
    assert best_fixed_route(maps) == (1.0, "RRRDDD"), best_fixed_route(maps)
    assert best_fixed_route(np.zeros((3, 4, 4), bool))[0] == 1.0
    maps[:, 0, 2] = True  # block the top row: only the second map's bottom-row route is left
    maps[:, 0, 0] = maps[:, 1, 0] = maps[:, 2, 0] = False
    assert best_fixed_route(maps) == (0.5, "DDDRRR"), best_fixed_route(maps)
    print("best fixed route: checked on hand-made maps")
    print("reference checks passed")


def references(maps: np.ndarray, slippery: bool, horizon: int) -> dict[str, np.ndarray]:
    return {
        "optimum": success_probabilities(maps, slippery, 1 / 3, horizon),
        "optimum_no_limit": success_probabilities(maps, slippery, 1 / 3, None),
        "random": success_probabilities(maps, slippery, 1 / 3, horizon, policy="random"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="training key jax.random.key(seed)")
    parser.add_argument("--eval-seed", type=int, default=2024, help="evaluation key (the maps)")
    parser.add_argument("--episodes", type=int, default=200, help="fresh maps evaluated (one episode each)")
    parser.add_argument("--check", action="store_true", help="validate the reference solver; no training")
    parser.add_argument("--reference-only", action="store_true", help="optimum and random floor; no training")
    parser.add_argument("--slippery", action="store_true", help="also print the slippery variant's references")
    args = parser.parse_args()
    if args.check:
        check_reference()
        return
    env, env_params = jrl.make(ENV_ID)
    horizon = int(env_params.max_steps_in_episode)
    # Not evaluation_key(--seed): the maps are a fixed test set chosen by --eval-seed, the same for
    # every training seed, and docs/dqn.md's table was recorded on key(2024)'s 200 maps.
    eval_key = jax.random.key(args.eval_seed)
    maps = maps_of_evaluation(eval_key, env, env_params, args.episodes)
    ref = references(maps, bool(env_params.is_slippery), horizon)
    random_sampled = float(
        jrl.evaluate(eval_key, random_policy, None, env, env_params, num_episodes=args.episodes).mean()
    )
    print(f"{ENV_ID} (is_slippery={bool(env_params.is_slippery)}), {args.episodes} maps from key {args.eval_seed}:")
    print(
        f"  optimum within {horizon} steps: mean {ref['optimum'].mean():.4f} (no limit {ref['optimum_no_limit'].mean():.4f})"
    )
    print(f"  random policy: exact {ref['random'].mean():.4f}, sampled {random_sampled:.4f}")
    route_success, route = best_fixed_route(maps)
    print(f"  best map-agnostic shortest route ({route}): {route_success:.4f}")
    if args.slippery:
        slip = references(maps, True, horizon)
        print(f"  slippery variant, same maps: optimum {slip['optimum'].mean():.4f} (no limit "
              f"{slip['optimum_no_limit'].mean():.4f}), random {slip['random'].mean():.4f}")  # fmt: skip
    if args.reference_only:
        return
    config, source = dqn.default_config(ENV_ID), f'dqn.default_config("{ENV_ID}")'
    trained = timed(dqn.make_train(config, env, env_params), train_key(args.seed))
    result, seconds = dqn.check_finite(trained.output), trained.compile_seconds + trained.run_seconds
    policy, policy_params = dqn.greedy_policy(config, env, env_params, result)
    returns = np.asarray(jrl.evaluate(eval_key, policy, policy_params, env, env_params, num_episodes=args.episodes))
    success = returns.mean()
    print(f"DQN ({source}, seed {args.seed}, {seconds:.1f} s with compilation): success rate {success:.4f}")
    print(f"  ratio to the optimum {success / ref['optimum'].mean():.4f}; random floor {ref['random'].mean():.4f}")
    solved = returns > 0
    print(f"  maps solved by DQN: {int(solved.sum())} / {args.episodes}; per-map optimum on them "
          f"{ref['optimum'][solved].sum():.1f}, on the rest {ref['optimum'][~solved].sum():.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
