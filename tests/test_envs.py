"""Tabular environment tests: exact models and time limits against Gymnasium (the independent
reference), sampled dynamics against the model, auto-reset and bad input. What every registered
environment promises (shapes, tracing once, vmap over params, keys, out-of-range actions, jrl.make's
generic keywords): test_conformance.py."""

from __future__ import annotations

import functools

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import jrl

# Ids that jrl and Gymnasium both register (the reference comparisons run on these).
GYM_IDS = ["CliffWalking-v1", "CliffWalkingSlippery-v1", "FrozenLake-v1", "FrozenLake8x8-v1", "Taxi-v4"]

# (id, keyword arguments) given identically to gymnasium.make and jrl.make.
MODEL_CASES = [
    ("FrozenLake-v1", {}),
    ("FrozenLake-v1", {"is_slippery": False}),
    ("FrozenLake-v1", {"is_slippery": True}),
    ("FrozenLake-v1", {"success_rate": 0.6}),
    ("FrozenLake-v1", {"is_slippery": False, "reward_schedule": (2, -1, 0.1)}),
    ("FrozenLake-v1", {"reward_schedule": (2, -1, 0.1), "success_rate": 0.6}),
    ("FrozenLake-v1", {"desc": ["SFH", "FFF", "HFG"]}),
    ("FrozenLake-v1", {"desc": ["SFH", "FFF", "HFG"], "is_slippery": False}),
    ("FrozenLake-v1", {"desc": ["SFFS", "FHFH", "FFFG"]}),  # 3x4, two start tiles
    ("FrozenLake-v1", {"map_name": "8x8", "is_slippery": False}),
    ("FrozenLake8x8-v1", {}),
    ("FrozenLake8x8-v1", {"is_slippery": False}),
    ("CliffWalking-v1", {}),
    ("CliffWalking-v1", {"is_slippery": True}),
    ("CliffWalkingSlippery-v1", {}),
    ("Taxi-v4", {}),
    ("Taxi-v4", {"is_rainy": True}),
    ("Taxi-v4", {"is_rainy": True, "rainy_probability": 0.7}),
]


def _case_id(case):
    env_id, kwargs = case
    return env_id + "".join(f"-{k}={v}" for k, v in kwargs.items()).replace(" ", "")


def _gym_make(env_id, **kwargs):
    return gymnasium.make(env_id, disable_env_checker=True, **kwargs)


def _mdp_numpy(env, params):
    mdp = env.mdp(params)
    return {
        "p": np.asarray(mdp.transition_probs),
        "s": np.asarray(mdp.next_states),
        "r": np.asarray(mdp.rewards),
        "t": np.asarray(mdp.terminals),
        "init": np.asarray(mdp.initial_distribution),
    }


def _support(mdp, s, a):
    """The positive-probability outcomes of (s, a): list of (prob, next_state, reward, terminal)."""
    return [
        (float(p), int(ns), float(r), bool(t))
        for p, ns, r, t in zip(mdp["p"][s, a], mdp["s"][s, a], mdp["r"][s, a], mdp["t"][s, a], strict=True)
        if p > 0
    ]


def _outcome_probs(mdp, s, a):
    """Model probability of each distinct (next_state, reward, terminal) outcome of (s, a)."""
    out = {}
    for p, ns, r, t in _support(mdp, s, a):
        out[ns, r, t] = out.get((ns, r, t), 0.0) + p
    return out


@functools.cache
def _jit(env, method):
    """One jitted ``env.<method>`` per (equal) environment, shared by every test."""
    return jax.jit(getattr(env, method))


@functools.cache
def _sampler(env, num):
    """Jitted: ``num`` independent ``step_env`` draws from one (state, action)."""

    def sample(key, state, action, params):
        keys = jax.random.split(key, num)
        return jax.vmap(env.step_env, in_axes=(0, None, None, None))(keys, state, action, params)

    return jax.jit(sample)


def _start_state(env, params, s):
    _, state = _jit(env, "reset")(jax.random.key(0), params)
    return state.replace(state=jnp.int32(s), time=jnp.zeros_like(state.time))


# --------------------------------------------------------------------------------------------
# 1. Exact models, initial distributions and time limits against Gymnasium.
# --------------------------------------------------------------------------------------------


def test_reference_ids_are_registered():
    registered = jrl.registered_envs()
    assert registered == sorted(registered)
    assert all(isinstance(i, str) for i in registered)
    tabular_shared = sorted(
        i for i in registered if i in gymnasium.registry and isinstance(jrl.make(i)[0], jrl.envs.TabularEnv)
    )
    assert tabular_shared == sorted(GYM_IDS)
    assert "RandomMDP-v0" in registered


@pytest.mark.parametrize("case", MODEL_CASES, ids=_case_id)
def test_model_matches_gymnasium_P(case):
    env_id, kwargs = case
    genv = _gym_make(env_id, **kwargs).unwrapped
    env, params = jrl.make(env_id, **kwargs)
    mdp = env.mdp(params)
    assert mdp.transition_probs.dtype == jnp.float32
    assert mdp.next_states.dtype == jnp.int32
    assert mdp.rewards.dtype == jnp.float32
    assert mdp.terminals.dtype == jnp.bool_
    assert mdp.initial_distribution.dtype == jnp.float32
    num_states, num_actions = genv.observation_space.n, genv.action_space.n
    assert mdp.transition_probs.shape[:2] == (num_states, num_actions)
    assert mdp.initial_distribution.shape == (num_states,)
    assert env.observation_space(params).n == num_states
    assert env.action_space(params).n == num_actions

    m = _mdp_numpy(env, params)
    mismatches = []
    for s in range(num_states):
        for a in range(num_actions):
            ref = [(float(p), int(ns), r, bool(t)) for p, ns, r, t in genv.P[s][a] if p > 0]
            got = _support(m, s, a)
            ok = len(ref) == len(got) and all(
                abs(pr - pg) <= 1e-6 and nr == ng and np.float32(rr) == np.float32(rg) and tr == tg
                for (pr, nr, rr, tr), (pg, ng, rg, tg) in zip(ref, got, strict=True)
            )
            if not ok:
                mismatches.append(((s, a), ref, got))
    assert not mismatches, f"{len(mismatches)} (s, a) rows differ from Gymnasium, e.g. {mismatches[:3]}"
    np.testing.assert_allclose(m["init"], genv.initial_state_distrib, rtol=0, atol=1e-6)


TIME_LIMIT_CASES = [
    *MODEL_CASES,
    ("RandomMDP-v0", None),  # not a Gymnasium id: its documented default is 100
    *[(env_id, {"max_episode_steps": 7}) for env_id in GYM_IDS],
    ("FrozenLake-v1", {"is_slippery": False, "max_episode_steps": 3}),
    ("CliffWalking-v1", {"is_slippery": True, "max_episode_steps": 500}),
]


@pytest.mark.parametrize("case", TIME_LIMIT_CASES, ids=lambda c: _case_id((c[0], c[1] or {})))
def test_time_limit_matches_gymnasium(case):
    env_id, kwargs = case
    _, params = jrl.make(env_id, **(kwargs or {}))
    if kwargs is None:
        expected = 100
    else:
        expected = _gym_make(env_id, **kwargs).spec.max_episode_steps
        expected = jrl.NO_TIME_LIMIT if expected is None else expected
    assert int(params.max_steps_in_episode) == expected


@pytest.mark.parametrize("env_id", GYM_IDS)
def test_time_limit_max_episode_steps_none_is_registered_default(env_id):
    # gymnasium.make(id, max_episode_steps=None) keeps the registered limit (None is its default).
    expected = _gym_make(env_id, max_episode_steps=None).spec.max_episode_steps
    expected = jrl.NO_TIME_LIMIT if expected is None else expected
    _, params = jrl.make(env_id, max_episode_steps=None)
    assert int(params.max_steps_in_episode) == expected


@pytest.mark.parametrize("env_id", ["FrozenLake-v1", "Taxi-v4"])
def test_time_limit_max_episode_steps_minus_one_is_no_limit(env_id):
    # gymnasium.make(id, max_episode_steps=-1) applies no TimeLimit at all.
    assert _gym_make(env_id, max_episode_steps=-1).spec.max_episode_steps is None
    _, params = jrl.make(env_id, max_episode_steps=-1)
    assert int(params.max_steps_in_episode) == jrl.NO_TIME_LIMIT


def _run_against_gymnasium(env_id, kwargs, num_steps, seed):
    """Step a deterministic environment in jrl and Gymnasium with the same random actions."""
    env, params = jrl.make(env_id, **kwargs)
    gym_env = _gym_make(env_id, **kwargs)
    step, reset = _jit(env, "step"), _jit(env, "reset")
    rng = np.random.default_rng(seed)
    init = gym_env.unwrapped.initial_state_distrib
    obs, state = reset(jax.random.key(seed), params)
    gym_obs, _ = gym_env.reset(seed=seed)
    gym_env.unwrapped.s = int(obs)  # Taxi starts at random: follow jrl's draw
    assert init[int(obs)] > 0
    dones = truncs = 0
    for t in range(num_steps):
        action = int(rng.integers(env.num_actions))
        obs, state, reward, term, trunc, info = step(jax.random.key(1000 + t), state, jnp.int32(action), params)
        gym_obs, gym_reward, gym_term, gym_trunc, _ = gym_env.step(action)
        assert int(info["final_observation"]) == gym_obs, f"step {t}"
        assert float(reward) == np.float32(gym_reward), f"step {t}"
        assert bool(term) == gym_term and bool(trunc) == gym_trunc, f"step {t}"
        if gym_term or gym_trunc:
            dones += 1
            truncs += gym_trunc
            gym_obs, _ = gym_env.reset()
            if np.count_nonzero(init) == 1:
                assert int(obs) == gym_obs
            assert init[int(obs)] > 0
            gym_env.unwrapped.s = int(obs)
        else:
            assert int(obs) == gym_obs
    return dones, truncs


@pytest.mark.parametrize(
    "case",
    [
        ("FrozenLake-v1", {"is_slippery": False, "max_episode_steps": 9}),
        ("FrozenLake8x8-v1", {"is_slippery": False, "reward_schedule": (5, -2, -0.5), "max_episode_steps": 30}),
        ("CliffWalking-v1", {"max_episode_steps": 25}),
        ("Taxi-v4", {"max_episode_steps": 20}),
    ],
    ids=_case_id,
)
def test_deterministic_trajectories_match_gymnasium(case):
    dones, truncs = _run_against_gymnasium(*case, num_steps=150, seed=3)
    assert dones > 0 and truncs > 0  # both auto-reset paths were exercised


def test_terminal_and_time_limit_on_same_step_like_gymnasium():
    # CliffWalking: up, 11 x right, down reaches the goal on step 13; a limit of 13 also truncates.
    env, params = jrl.make("CliffWalking-v1", max_episode_steps=13)
    gym_env = _gym_make("CliffWalking-v1", max_episode_steps=13)
    gym_env.reset(seed=0)
    obs, state = _jit(env, "reset")(jax.random.key(0), params)
    step = _jit(env, "step")
    for t, action in enumerate([0] + [1] * 11 + [2]):
        obs, state, reward, term, trunc, info = step(jax.random.key(t), state, jnp.int32(action), params)
        gym_obs, gym_reward, gym_term, gym_trunc, _ = gym_env.step(action)
        assert (int(info["final_observation"]), float(reward), bool(term), bool(trunc)) == (
            gym_obs,
            gym_reward,
            gym_term,
            gym_trunc,
        )
    assert bool(term) and bool(trunc)
    assert int(info["final_observation"]) == 47 and int(obs) == 36 and int(state.time) == 0


# --------------------------------------------------------------------------------------------
# 2. Sampled dynamics match the model statistically.
# --------------------------------------------------------------------------------------------

NUM_SAMPLES = 200_000
# Tolerance: |empirical - p| <= 5 standard errors sqrt(p (1 - p) / N) (plus float slack); a false
# failure has probability ~6e-7 per checked outcome.
NUM_SE = 5.0


def _check_frequencies(counts, probs, num):
    """counts: dict outcome -> count, probs: dict outcome -> model probability."""
    for outcome, p in probs.items():
        freq = counts[outcome] / num
        tol = NUM_SE * np.sqrt(p * (1 - p) / num) + 1e-7
        assert abs(freq - p) <= tol, f"outcome {outcome}: frequency {freq}, model {p}, tolerance {tol}"


@pytest.mark.parametrize(
    "case",
    [
        ("FrozenLake-v1", {}, 6, 1),  # left/right into holes, down onto ice
        ("FrozenLake-v1", {"success_rate": 0.6}, 14, 2),  # right reaches the goal with 0.6
        ("FrozenLake8x8-v1", {"success_rate": 0.5, "reward_schedule": (3, -1, 0.25)}, 0, 3),
        ("Taxi-v4", {"is_rainy": True}, 240, 0),  # (2, 2), passenger R, dest R... south
        ("Taxi-v4", {"is_rainy": True, "rainy_probability": 0.7}, 208, 2),
        ("CliffWalkingSlippery-v1", {}, 25, 2),  # down slips into the cliff or sideways
        ("RandomMDP-v0", {}, 3, 1),
        ("RandomMDP-v0", {"seed": 5}, 9, 0),
    ],
    ids=lambda c: _case_id(c[:2]) + f"-s{c[2]}-a{c[3]}",
)
def test_step_env_samples_the_model(case):
    env_id, kwargs, s, a = case
    env, params = jrl.make(env_id, **kwargs)
    mdp = _mdp_numpy(env, params)
    probs = _outcome_probs(mdp, s, a)
    assert len(probs) >= 2  # a genuinely random row
    state = _start_state(env, params, s)
    sample = _sampler(env, NUM_SAMPLES)
    obs, next_state, reward, term, trunc, _ = jax.device_get(sample(jax.random.key(17), state, jnp.int32(a), params))
    assert obs.shape == (NUM_SAMPLES,)
    assert np.array_equal(obs, next_state.state)
    assert np.all(next_state.time == 1) and not np.any(trunc)
    counts = {
        outcome: int(np.count_nonzero((obs == outcome[0]) & (reward == np.float32(outcome[1])) & (term == outcome[2])))
        for outcome in probs
    }
    assert sum(counts.values()) == NUM_SAMPLES, "some draws are outside the model's support"
    _check_frequencies(counts, probs, NUM_SAMPLES)


@pytest.mark.parametrize(
    "case",
    [
        ("Taxi-v4", {}, 300_000),
        ("FrozenLake-v1", {"desc": ["SFFS", "FHFH", "FFFG"]}, 100_000),
        ("RandomMDP-v0", {}, 100_000),
        ("CliffWalking-v1", {}, 10_000),
    ],
    ids=lambda c: _case_id(c[:2]),
)
def test_reset_samples_initial_distribution(case):
    env_id, kwargs, num = case
    env, params = jrl.make(env_id, **kwargs)
    init = np.asarray(env.mdp(params).initial_distribution, np.float64)
    reset_many = jax.jit(lambda key, params: jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key, num), params))
    obs, state = jax.device_get(reset_many(jax.random.key(5), params))
    assert np.array_equal(obs, state.state) and np.all(state.time == 0)
    counts = np.bincount(obs, minlength=init.size)
    assert counts.size == init.size
    support = init > 0
    assert counts[~support].sum() == 0, "reset drew a state with initial probability 0"
    if env_id == "Taxi-v4":
        assert support.sum() == 300
        np.testing.assert_allclose(init[support], 1 / 300, rtol=1e-5)
    if support.sum() > 1:
        # Chi-square goodness of fit over the support; fail only below p = 1e-6.
        expected = num * init[support] / init[support].sum()
        chi2 = ((counts[support] - expected) ** 2 / expected).sum()
        assert stats.chi2.sf(chi2, support.sum() - 1) > 1e-6, f"chi2 = {chi2}"
        # And no single state more than 5 standard errors off.
        freq = counts[support] / num
        p = init[support]
        assert np.all(np.abs(freq - p) <= NUM_SE * np.sqrt(p * (1 - p) / num))
    else:
        assert counts[support].sum() == num


# --------------------------------------------------------------------------------------------
# 3. Auto-reset and truncation.
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lake():
    env, params = jrl.make("FrozenLake-v1", is_slippery=False)
    return env, params, _jit(env, "step"), _jit(env, "reset")


def _assert_bool_scalar(x):
    assert x.shape == () and x.dtype == jnp.bool_


def test_auto_reset_on_hole(lake):
    _, params, step, reset = lake
    obs, state = reset(jax.random.key(0), params)
    assert int(obs) == 0 and int(state.time) == 0
    obs, state, reward, term, trunc, info = step(jax.random.key(1), state, jnp.int32(2), params)  # right
    for flag in (term, trunc):
        _assert_bool_scalar(flag)
    assert (int(obs), int(state.state), int(state.time), float(reward)) == (1, 1, 1, 0.0)
    assert not bool(term) and not bool(trunc) and int(info["final_observation"]) == 1
    obs, state, reward, term, trunc, info = step(jax.random.key(2), state, jnp.int32(1), params)  # down: hole 5
    for flag in (term, trunc):
        _assert_bool_scalar(flag)
    assert bool(term) and not bool(trunc)
    assert int(info["final_observation"]) == 5
    assert float(reward) == 0.0
    assert int(obs) == 0 and int(state.state) == 0 and int(state.time) == 0


def test_auto_reset_on_goal(lake):
    _, params, step, reset = lake
    obs, state = reset(jax.random.key(0), params)
    path = [1, 1, 2, 1, 2, 2]  # 0 -> 4 -> 8 -> 9 -> 13 -> 14 -> 15 (G)
    for t, action in enumerate(path):
        obs, state, reward, term, trunc, info = step(jax.random.key(t), state, jnp.int32(action), params)
        if t < len(path) - 1:
            assert not bool(term) and float(reward) == 0.0 and int(state.time) == t + 1
    assert bool(term) and not bool(trunc) and float(reward) == 1.0
    assert int(info["final_observation"]) == 15 and int(obs) == 0 and int(state.time) == 0


def test_truncation_fires_exactly_at_limit():
    env, params = jrl.make("CliffWalking-v1")
    assert int(params.max_steps_in_episode) == jrl.NO_TIME_LIMIT
    params = params.replace(max_steps_in_episode=jnp.int32(5))
    step = _jit(env, "step")
    obs, state = _jit(env, "reset")(jax.random.key(0), params)
    assert int(obs) == 36
    position = 36
    for t in range(1, 16):
        in_episode = (t - 1) % 5 + 1
        action = 0 if in_episode == 1 else 1  # up from the start, then right along row 2
        obs, state, reward, term, trunc, info = step(jax.random.key(t), state, jnp.int32(action), params)
        _assert_bool_scalar(trunc)
        _assert_bool_scalar(term)
        position = 24 if in_episode == 1 else position + 1
        assert int(info["final_observation"]) == position
        assert float(reward) == -1.0 and not bool(term)
        if in_episode < 5:
            assert not bool(trunc), f"step {t}"
            assert int(obs) == position and int(state.time) == in_episode
        else:
            assert bool(trunc), f"step {t}"
            assert int(obs) == 36 and int(state.state) == 36 and int(state.time) == 0
            position = 36


def test_step_env_does_not_reset(lake):
    env, params, _, reset = lake
    step_env = _jit(env, "step_env")
    _, state = reset(jax.random.key(0), params)
    obs, state, _, term, trunc, info = step_env(jax.random.key(1), state, jnp.int32(1), params)  # 4
    assert not bool(term) and not bool(trunc) and int(obs) == 4 and int(state.time) == 1
    obs, state, _, term, trunc, info = step_env(jax.random.key(2), state, jnp.int32(2), params)  # 5: hole
    assert bool(term) and not bool(trunc)
    assert int(obs) == 5 and int(state.state) == 5 and int(state.time) == 2
    assert "final_observation" not in info


# --------------------------------------------------------------------------------------------
# 4. Property-based rollouts. (Shapes, tracing, vmap over params, keys and out-of-range actions
# for every registered id: test_conformance.py.)
# --------------------------------------------------------------------------------------------

ROLLOUT_LEN = 48
ROLLOUT_CASES = [
    ("FrozenLake-v1", {}),
    ("CliffWalkingSlippery-v1", {}),
    ("Taxi-v4", {"is_rainy": True}),
    ("RandomMDP-v0", {}),
]
_ROLLOUTS: dict = {}


def _rollout(case_index):
    """(env, params, model, jitted rollout), compiled once per case and reused by every example."""
    if case_index not in _ROLLOUTS:
        env_id, kwargs = ROLLOUT_CASES[case_index]
        env, params = jrl.make(env_id, **kwargs)
        space = env.observation_space(params)

        def rollout(key, params, actions):
            keys = jax.random.split(key, actions.shape[0] + 1)
            obs0, state0 = env.reset(keys[0], params)

            def body(carry, inputs):
                _, state = carry
                k, action = inputs
                obs, next_state, reward, term, trunc, info = env.step(k, state, action, params)
                final = info["final_observation"]
                record = {
                    "prev": state.state,
                    "obs": obs,
                    "state": next_state.state,
                    "time": next_state.time,
                    "reward": reward,
                    "term": term,
                    "trunc": trunc,
                    "final": final,
                    "obs_ok": space.contains(obs),
                    "final_ok": space.contains(final),
                }
                return (obs, next_state), record

            _, records = jax.lax.scan(body, (obs0, state0), (keys[1:], actions))
            return obs0, state0, records

        _ROLLOUTS[case_index] = (env, params, _mdp_numpy(env, params), jax.jit(rollout))
    return _ROLLOUTS[case_index]


@pytest.mark.parametrize("case_index", range(len(ROLLOUT_CASES)), ids=[_case_id(c) for c in ROLLOUT_CASES])
@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    limit=st.one_of(st.integers(1, 8), st.none()),
    action_seed=st.integers(0, 2**32 - 1),
)
def test_rollout_properties(case_index, seed, limit, action_seed):
    env, params, mdp, rollout = _rollout(case_index)
    if limit is not None:
        params = params.replace(max_steps_in_episode=jnp.int32(limit))
    limit_value = int(params.max_steps_in_episode)
    actions = np.random.default_rng(action_seed).integers(env.num_actions, size=ROLLOUT_LEN).astype(np.int32)
    obs0, state0, rec = jax.device_get(rollout(jax.random.key(seed), params, actions))
    num_states = env.num_states
    assert int(obs0) == int(state0.state) and int(state0.time) == 0 and mdp["init"][int(obs0)] > 0

    current, elapsed = int(obs0), 0
    for t in range(ROLLOUT_LEN):
        obs, final = int(rec["obs"][t]), int(rec["final"][t])
        term, trunc, time = bool(rec["term"][t]), bool(rec["trunc"][t]), int(rec["time"][t])
        assert 0 <= obs < num_states and 0 <= final < num_states
        assert bool(rec["obs_ok"][t]) and bool(rec["final_ok"][t])
        assert int(rec["prev"][t]) == current
        # The transition is one of the model's positive-probability outcomes.
        outcome = (final, float(rec["reward"][t]), term)
        assert outcome in _outcome_probs(mdp, current, int(actions[t])), f"step {t}: {outcome}"
        elapsed += 1
        assert trunc == (elapsed == limit_value), f"step {t}: elapsed {elapsed}, limit {limit_value}"
        assert time < limit_value
        assert obs == int(rec["state"][t])
        if term or trunc:
            assert time == 0 and mdp["init"][obs] > 0
            elapsed = 0
        else:
            assert obs == final and time == elapsed
        current = obs


# --------------------------------------------------------------------------------------------
# 5. RandomMDP-v0.
# --------------------------------------------------------------------------------------------


def test_random_mdp_model():
    env, params = jrl.make("RandomMDP-v0")
    m = _mdp_numpy(env, params)
    assert (env.num_states, env.num_actions) == (10, 2)
    assert env.observation_space(params).n == 10 and env.action_space(params).n == 2
    assert m["p"].shape[:2] == (10, 2)
    assert np.all(m["r"] == m["r"][:, :, :1]), "reward must not depend on the sampled outcome"
    assert np.all(m["r"] >= 0) and np.all(m["r"] < 1)
    assert len(np.unique(m["r"][:, :, 0])) == 20  # a continuous draw: all distinct
    for s in range(10):
        for a in range(2):
            per_state = np.bincount(m["s"][s, a], weights=m["p"][s, a], minlength=10)
            np.testing.assert_allclose(per_state, 0.1, rtol=0, atol=1e-6)
    assert not m["t"].any()
    np.testing.assert_allclose(m["init"], 0.1, rtol=0, atol=1e-7)
    assert int(params.max_steps_in_episode) == 100


def test_random_mdp_seeds():
    env0, p0 = jrl.make("RandomMDP-v0", seed=0)
    _, p0_again = jrl.make("RandomMDP-v0", seed=0)
    _, p1 = jrl.make("RandomMDP-v0", seed=1)
    m0, m0b, m1 = _mdp_numpy(env0, p0), _mdp_numpy(env0, p0_again), _mdp_numpy(env0, p1)
    for name in m0:
        np.testing.assert_array_equal(m0[name], m0b[name])
    assert not np.allclose(m0["r"][:, :, 0], m1["r"][:, :, 0])
    np.testing.assert_array_equal(m0["p"], m1["p"])


# --------------------------------------------------------------------------------------------
# 6. Bad input.
# --------------------------------------------------------------------------------------------


def test_unknown_id_lists_registered_ids():
    with pytest.raises(ValueError) as err:
        jrl.make("Unknown-v0")
    message = str(err.value)
    assert "Unknown-v0" in message
    for env_id in jrl.registered_envs():
        assert env_id in message


@pytest.mark.parametrize(("bad", "close"), [("FrozenLake-v2", "FrozenLake-v1"), ("Taxi-v3", "Taxi-v4")])
def test_unknown_id_suggests_closest(bad, close):
    with pytest.raises(ValueError) as err:
        jrl.make(bad)
    # Once in the suggestion and once in the list of registered ids.
    assert str(err.value).count(repr(close)) >= 2, str(err.value)


@pytest.mark.parametrize(
    ("env_id", "kwargs", "error", "needle"),
    [
        ("Taxi-v4", {"is_slipery": True}, TypeError, "is_slipery"),
        ("FrozenLake-v1", {"is_slippery": "yes"}, TypeError, "is_slippery"),
        ("FrozenLake-v1", {"map_name": "5x5"}, ValueError, "5x5"),
        ("FrozenLake-v1", {"success_rate": 1.5}, ValueError, "success_rate"),
        ("Taxi-v4", {"fickle_passenger": True}, ValueError, "fickle_passenger"),
        ("Taxi-v4", {"rainy_probability": -0.1}, ValueError, "rainy_probability"),
    ],
    ids=lambda x: str(x) if not isinstance(x, dict) else "-".join(map(str, x.items())),
)
def test_bad_keywords(env_id, kwargs, error, needle):
    with pytest.raises(error) as err:
        jrl.make(env_id, **kwargs)
    assert needle in str(err.value)


def _tiny_mdp(probs):
    probs = np.asarray(probs, np.float32)
    shape = probs.shape
    return jrl.TabularMDP(
        transition_probs=jnp.asarray(probs),
        next_states=jnp.zeros(shape, jnp.int32).at[..., 1].set(1),
        rewards=jnp.ones(shape, jnp.float32),
        terminals=jnp.zeros(shape, bool),
        initial_distribution=jnp.asarray([1.0, 0.0], jnp.float32),
    )


def test_make_tabular_validates_probabilities():
    good = [[[0.25, 0.75]], [[1.0, 0.0]]]
    env, params = jrl.make_tabular(_tiny_mdp(good), 10)
    assert (env.num_states, env.num_actions, env.num_outcomes) == (2, 1, 2)
    assert int(params.max_steps_in_episode) == 10
    with pytest.raises(ValueError):
        jrl.make_tabular(_tiny_mdp([[[0.5, 0.4]], [[1.0, 0.0]]]), 10)
    with pytest.raises(ValueError):
        jrl.make_tabular(_tiny_mdp([[[1.5, -0.5]], [[1.0, 0.0]]]), 10)
