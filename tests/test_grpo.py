"""GRPO for text (issue 26, item 3): the loss against a float64 NumPy recomputation, group
normalisation, groups sharing their prompt, a tiny run that raises the reward, chunked runs equal
to one run bit for bit, and refused configs. One tiny model, one compiled training."""

from __future__ import annotations

import functools

import jax
import numpy as np
import pytest

import jrl
from jrl.text import LanguageModel, LMConfig, grpo, init_model, save_model
from jrl.text.q_learning import rollout

TINY = {"d_model": 16, "num_layers": 1, "num_heads": 2, "mlp_ratio": 2}


@functools.cache
def made():
    return jrl.make("Arithmetic-v0", digits=1, format_reward=0.5)


@functools.cache
def tiny_model(seed=0):
    env, _ = made()
    vocab = env.vocabulary
    config = LMConfig("Arithmetic-v0", vocab.size, vocab.num_actions, env.observation_space().shape[0], **TINY)
    # Random weights drawn on the host in the shapes init_model gives (traced, not run: Flax's
    # initialisation compiled or op by op takes seconds); layer-norm scales at 1.
    shapes = jax.eval_shape(lambda: init_model(config, jax.random.key(0)).params)
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        if jax.tree_util.keystr(path).endswith("['scale']"):
            return np.ones(leaf.shape, leaf.dtype)
        return rng.normal(0.0, 0.2, leaf.shape).astype(leaf.dtype)

    return LanguageModel(config, jax.tree_util.tree_map_with_path(draw, shapes))


def numpy_loss(logp, old, ref, advantages, active, clip_eps, beta_kl):
    """The module docstring's loss, term by term in float64."""
    logp, old, ref, advantages = (np.asarray(x, np.float64) for x in (logp, old, ref, advantages))
    total = kl = clipped = 0.0
    count = 0
    for i in range(logp.shape[0]):
        for t in range(logp.shape[1]):
            if not active[i, t]:
                continue
            ratio = np.exp(logp[i, t] - old[i, t])
            a = advantages[i]
            clipped_term = min(max(ratio, 1 - clip_eps), 1 + clip_eps) * a
            surrogate = min(ratio * a, clipped_term)
            k3 = np.exp(ref[i, t] - logp[i, t]) - (ref[i, t] - logp[i, t]) - 1
            total += surrogate - beta_kl * k3
            kl += k3
            clipped += clipped_term < ratio * a
            count += 1
    return -total / count, kl / count, clipped / count


def test_the_loss_matches_a_float64_recomputation():
    """Ratios inside and outside the clip range, positive and negative advantages, inactive tokens
    (which must not count), a reference far from the policy."""
    rng = np.random.default_rng(0)
    n, t = 6, 5
    old = np.log(rng.uniform(0.05, 1.0, (n, t)))
    logp = old + rng.normal(0.0, 0.8, (n, t))  # ratios from about 0.1 to 10
    ref = old + rng.normal(0.0, 1.0, (n, t))
    advantages = rng.normal(0.0, 1.0, n)
    active = rng.uniform(size=(n, t)) < 0.7
    garbage = np.where(active, logp, 50.0)  # what inactive positions hold must not matter
    as32 = lambda x: np.asarray(x, np.float32)  # noqa: E731
    for clip_eps, beta_kl in ((0.2, 0.04), (0.1, 0.0), (0.5, 1.0)):
        loss, parts = grpo.token_loss(as32(garbage), as32(old), as32(ref), as32(advantages), active, clip_eps, beta_kl)
        expected, kl, clipped = numpy_loss(logp, old, ref, advantages, active, clip_eps, beta_kl)
        np.testing.assert_allclose(float(loss), expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(float(parts["kl"]), kl, rtol=1e-5)
        np.testing.assert_allclose(float(parts["clip_fraction"]), clipped, atol=1e-7)
        assert 0 < clipped < 0.9  # the clip acts on some tokens and not on others
    # At the sampling policy (ratio 1) the gradient-free value is -mean(A) over tokens, plus beta * KL.
    loss, _ = grpo.token_loss(as32(old), as32(old), as32(old), as32(advantages), active, 0.2, 0.5)
    weights = active.sum(axis=1)
    np.testing.assert_allclose(float(loss), -(advantages * weights).sum() / weights.sum(), rtol=1e-5, atol=1e-6)


def test_group_normalisation():
    returns = np.asarray([1.0, 0.0, 0.0, 0.0, 0.5, 0.5, 0.5, 0.5, 2.0, 1.0, 0.0, 1.0], np.float32)
    advantages = np.asarray(grpo.group_advantages(returns, 4, 1e-4))
    for group in range(3):
        r = returns[4 * group : 4 * group + 4].astype(np.float64)
        expected = (r - r.mean()) / (r.std(ddof=1) + 1e-4)
        np.testing.assert_allclose(advantages[4 * group : 4 * group + 4], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(advantages[:4], [1.4997, -0.4999, -0.4999, -0.4999], atol=1e-4)  # by hand
    assert np.all(advantages[4:8] == 0.0)  # equal rewards: no signal


def test_groups_share_their_prompt():
    env, params = made()
    # Uniformly random tokens (no model): the grouping is the resets', whatever decodes.
    out = jax.jit(lambda k: rollout(k, env, params, None, None, None, 0.0, 12, group_size=4))(jax.random.key(3))
    texts = env.vocabulary.decode_batch(np.asarray(out["tokens"]))
    prompts = [t.split("=")[0] for t in texts]
    assert all(len(set(prompts[g : g + 4])) == 1 for g in range(0, 12, 4))
    assert len(set(prompts[::4])) == 3 and len(set(texts)) > 3  # groups differ; completions vary
    with pytest.raises(ValueError, match="group_size=5 must divide num_episodes=12"):
        rollout(jax.random.key(3), env, params, None, None, None, 0.0, 12, group_size=5)


CONFIG = grpo.GRPOConfig(num_prompts=16, group_size=4, num_steps=12, log_interval=6, learning_rate=1e-2, beta_kl=0.01)


@pytest.fixture(scope="module")
def trained():
    env, params = made()
    whole = jax.jit(grpo.make_train(CONFIG, env, params, model=tiny_model()))(jax.random.key(0))
    return jax.device_get(whole)


def test_a_tiny_run_raises_the_reward_and_runs_in_chunks(trained):
    """Format reward 0.5 on one-digit problems: a random tiny model rarely writes a number and
    stops; the second block of six iterations scores well above the first (0.46 against 0.18 when
    written). Two one-block chunks give the same weights and metrics as the whole run, bit for bit."""
    env, params = made()
    returns = np.asarray(trained.metrics["episode_return"])
    assert returns[1] > returns[0] + 0.15, returns
    assert set(trained.metrics) == set(grpo.METRICS) and np.asarray(trained.metrics["finite"]).all()
    assert np.asarray(trained.metrics["kl"])[1] > 0.0
    algorithm = grpo.make_algorithm(CONFIG, env, params, model=tiny_model())
    run = jax.jit(algorithm.run, static_argnums=1)
    state, first = run(algorithm.init(jax.random.key(0)), 1)
    state, rest = run(state, 1)
    chunked = algorithm.result(state, {k: np.concatenate([first[k], rest[k]]) for k in first})
    jax.tree_util.tree_map(np.testing.assert_array_equal, trained.model.params, chunked.model.params)
    for name in grpo.METRICS:
        np.testing.assert_array_equal(np.asarray(trained.metrics[name]), np.asarray(chunked.metrics[name]), name)
    # What jrl generate and jrl evaluate decode with: the tuned model alone (the command-line
    # test runs both).
    model, q_model, beta = grpo.decoding_models(CONFIG, trained)
    assert isinstance(model, LanguageModel) and q_model is None and beta == 0.0
    _, policy_params = grpo.greedy_policy(CONFIG, env, params, trained)
    assert policy_params is trained.model.params


@pytest.mark.parametrize(
    "changes, error, match",
    [
        ({"group_size": 1}, ValueError, r"group_size must be >= 2, got 1"),
        ({"group_size": 2.0}, TypeError, "group_size must be an int"),
        ({"clip_eps": 0.0}, ValueError, r"clip_eps must be in \(0.0, 1.0\), got 0.0"),
        ({"clip_eps": 1.0}, ValueError, "clip_eps must be in"),
        ({"beta_kl": -0.1}, ValueError, r"beta_kl must be in \[0.0"),
        ({"learning_rate": 0.0}, ValueError, "learning_rate must be in"),
        ({"num_prompts": 0}, ValueError, "num_prompts must be >= 1"),
        ({"temperature": 0.0}, ValueError, "temperature must be in"),
        ({"advantage_eps": 0.0}, ValueError, "advantage_eps must be in"),
        ({"pretrained": 3}, TypeError, "pretrained must be a directory path"),
    ],
)
def test_bad_configs_are_refused(changes, error, match):
    with pytest.raises(error, match=match):
        grpo.GRPOConfig(**changes)


def test_bad_setups_are_refused(tmp_path):
    env, params = made()
    with pytest.raises(ValueError, match="pretrained is empty"):
        grpo.make_algorithm(grpo.GRPOConfig(), env, params)
    with pytest.raises(ValueError, match=r"pretrained: .* is not a jrl language model"):
        grpo.make_algorithm(grpo.GRPOConfig(pretrained=str(tmp_path)), env, params)
    two_digits, two_params = jrl.make("Arithmetic-v0", digits=2)  # a longer buffer
    save_model(tmp_path / "one", tiny_model())
    with pytest.raises(ValueError, match=r"made for Arithmetic-v0 .* needs \(16, 15, 12\)"):
        grpo.make_algorithm(grpo.GRPOConfig(pretrained=str(tmp_path / "one")), two_digits, two_params)
    cart, cart_params = jrl.make("CartPole-v1")
    with pytest.raises(ValueError, match="needs a text environment"):
        grpo.make_algorithm(grpo.GRPOConfig(pretrained="x"), cart, cart_params)
    with pytest.raises(ValueError, match="grpo has defaults for"):
        grpo.default_config("CartPole-v1")
    assert grpo.default_config("Arithmetic-v0", "lm").pretrained == "lm"
