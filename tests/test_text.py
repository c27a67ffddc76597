"""jrl.text: the language model and its safetensors files, ``generate``, pretraining data, soft
Q-learning's targets and rollouts, and the ``pretrain`` / ``generate`` commands.

References are independent: a plain Python loop over ``model.apply`` for decoding, NumPy for the
nucleus filter and the soft values, float64 Python for the lambda-returns, the graph's adjacency
and Python sets for the pretraining data, the walk rules written out for the rollout's rewards.
Models here are tiny (one layer, width 16) so everything compiles in seconds.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jrl
from jrl import cli
from jrl.envs import word_gen
from jrl.text import LanguageModel, LMConfig, ModelFileError, generate, init_model, load_model, save_model
from jrl.text import q_learning as text_q
from jrl.text.generate import choose_tokens, decode_tokens
from jrl.text.pretrain import PretrainConfig, data_batch, pretrain

TINY = {"d_model": 16, "num_layers": 1, "num_heads": 2, "mlp_ratio": 2}


@functools.cache
def made(env_id):
    return jrl.make(env_id)


@functools.cache
def tiny_model(env_id, seed=0):
    env, _ = made(env_id)
    vocab = env.vocabulary
    config = LMConfig(env_id, vocab.size, vocab.num_actions, env.observation_space(None).shape[0], **TINY)
    return init_model(config, jax.random.key(seed))


def q_like(model, seed=1):
    """Another model of the same config, standing in for a Q-model."""
    return LanguageModel(model.config, init_model(model.config, jax.random.key(seed)).params)


# --- the model on disk -------------------------------------------------------------------------
def test_save_load_round_trip_is_exact(tmp_path):
    model = tiny_model("WordGen-v0")
    save_model(tmp_path / "m", model, {"note": "x"})
    loaded = load_model(tmp_path / "m")
    assert loaded.config == model.config
    jax.tree_util.tree_map(np.testing.assert_array_equal, loaded.params, model.params)
    assert json.loads((tmp_path / "m" / "config.json").read_text())["training"] == {"note": "x"}
    # The weights are safetensors: an 8-byte header length, then a JSON header naming every array.
    raw = (tmp_path / "m" / "model.safetensors").read_bytes()
    header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])
    assert "params/blocks_0/qkv/kernel" in header and header["params/blocks_0/qkv/kernel"]["dtype"] == "F32"


def test_load_refuses_missing_files_bad_configs_and_weights_that_do_not_fit(tmp_path):
    model = tiny_model("WordGen-v0")
    with pytest.raises(ModelFileError, match=r"config.json is missing"):
        load_model(tmp_path)
    save_model(tmp_path / "m", model)
    config_path = tmp_path / "m" / "config.json"
    document = json.loads(config_path.read_text())
    document["config"]["d_model"] = 32
    config_path.write_text(json.dumps(document))
    with pytest.raises(ModelFileError, match=r"do not fit config.json .*needs float32\[.*32"):
        load_model(tmp_path / "m")
    # A deeper model's weights under this model's config: the extra layer's arrays are named.
    save_model(tmp_path / "deep", init_model(model.config.replace(num_layers=2), jax.random.key(0)))
    (tmp_path / "deep" / "config.json").write_text(json.dumps({"config": model.config.to_dict()}))
    with pytest.raises(ModelFileError, match=r"unexpected params/blocks_1/"):
        load_model(tmp_path / "deep")
    # float64 weights of the right shapes: the dtype is named.
    save_model(tmp_path / "f64", LanguageModel(model.config, jax.tree_util.tree_map(np.float64, model.params)))
    with pytest.raises(ModelFileError, match=r"float64\[.*the config needs float32"):
        load_model(tmp_path / "f64")
    document["config"]["colour"] = "red"
    config_path.write_text(json.dumps(document))
    with pytest.raises(ModelFileError, match=r"not a valid model config.*colour"):
        load_model(tmp_path / "m")
    save_model(tmp_path / "m", model)
    (tmp_path / "m" / "model.safetensors").write_bytes(b"\x80\x04not safetensors")  # a pickle opcode
    with pytest.raises(ModelFileError, match="not a readable safetensors file"):
        load_model(tmp_path / "m")


def test_lm_config_validates():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        LMConfig("WordGen-v0", 28, 27, 9, d_model=10, num_heads=4)
    with pytest.raises(ValueError, match="num_outputs must be in"):
        LMConfig("WordGen-v0", 28, 29, 9)


def test_the_model_is_causal():
    """Row i must not change when tokens after i change (padding never leaks into a score)."""
    model = tiny_model("WordGen-v0")
    a = jnp.array([27, 3, 4, 5, 6, 7, 8, 9, 10])
    b = a.at[5:].set(26)
    np.testing.assert_array_equal(model.apply(a)[:5], model.apply(b)[:5])
    assert not np.array_equal(model.apply(a)[5:], model.apply(b)[5:])


# --- decoding ----------------------------------------------------------------------------------
def reference_decode(model, prompt_ids, key, max_new, q=None, beta=0.0, greedy=False, temperature=1.0):
    """A plain Python loop over ``model.apply``, one token at a time (the founding document's way)."""
    vocab = jrl.text.vocabulary(model.config.env_id)
    tokens = list(prompt_ids) + [vocab.end_id] * (model.config.context_length - len(prompt_ids))
    for i in range(len(prompt_ids) - 1, len(prompt_ids) - 1 + max_new):
        scores = model.apply(jnp.array(tokens))[i]
        if q is not None:
            scores = scores + beta * q.apply(jnp.array(tokens))[i]
        if greedy:
            new = int(jnp.argmax(scores))
        else:
            new = int(jax.random.categorical(jax.random.fold_in(key, i), scores[None] / temperature)[0])
        tokens[i + 1] = new
        if new == vocab.end_id:
            break
    return tokens


def test_generate_with_beta_zero_is_the_language_model_alone():
    model, q = tiny_model("WordGen-v0"), q_like(tiny_model("WordGen-v0"))
    key = jax.random.key(3)
    alone = generate(model, ["c"] * 4, key)
    with_q = generate(model, ["c"] * 4, key, beta=0.0, q_params=q)
    np.testing.assert_array_equal(alone.tokens, with_q.tokens)
    for b in range(4):
        # One row at a time: row b of a batch draws from its own slice of the step's noise.
        single = generate(model, ["c"], jax.random.key(3 + b))
        reference = reference_decode(model, [27, 2], jax.random.key(3 + b), 7)
        assert single.tokens[0].tolist() == reference


def softmax64(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_sampling_at_a_temperature_draws_from_softmax_of_scores_over_the_temperature():
    scores = jnp.array([[2.0, 1.0, 0.0, -0.5, -1.0, -3.0]], jnp.float32)
    draws = 20_000
    keys = jax.random.split(jax.random.key(7), draws)
    draw = jax.jit(jax.vmap(choose_tokens, in_axes=(0, None, None)))
    for temperature in (0.5, 2.0):
        frequency = np.bincount(np.asarray(draw(keys, scores, temperature))[:, 0], minlength=6) / draws
        expected = softmax64(np.asarray(scores[0]) / temperature)
        # Total variation of 20,000 draws from 6 categories: about 0.006 on average; 0.02 is over 5
        # standard deviations (and the keys are fixed). softmax(scores * T) is >= 0.2 away.
        assert 0.5 * np.abs(frequency - expected).sum() < 0.02, (temperature, frequency, expected)
        assert 0.5 * np.abs(softmax64(np.asarray(scores[0]) * temperature) - expected).sum() > 0.2
    # generate passes its temperature to that rule: a row equals the Python loop's at scores / T.
    model = tiny_model("WordGen-v0")
    differs = False
    for b in range(3):
        key = jax.random.key(40 + b)
        for temperature in (0.5, 2.0):
            row = generate(model, ["c"], key, temperature=temperature).tokens[0].tolist()
            assert row == reference_decode(model, [27, 2], key, 7, temperature=temperature), (b, temperature)
        differs |= row != reference_decode(model, [27, 2], key, 7, temperature=0.5)
    assert differs  # the two temperatures do decode differently here


def test_generate_with_q_follows_logits_plus_beta_q_greedily():
    model = tiny_model("GraphWalkText-v0")
    q = q_like(model)
    out = generate(model, ["3", "7"], jax.random.key(0), do_sample=False, beta=1.5, q_params=q)
    for row, prompt in zip(out.tokens, ([3], [7]), strict=True):
        assert row.tolist() == reference_decode(model, prompt, None, 9, q=q, beta=1.5, greedy=True)
    assert out.texts[0].startswith("3") and out.texts[0] == jrl.text.vocabulary("GraphWalkText-v0").decode(
        out.tokens[0]
    )
    # Walks have no bos token: an empty prompt has nothing to continue from.
    with pytest.raises(ValueError, match="prompt 1 is empty; this vocabulary has no bos token"):
        generate(model, ["3", ""], jax.random.key(0))


def test_generate_respects_max_new_tokens_and_ragged_prompts():
    model = tiny_model("WordGen-v0")
    out = generate(model, ["", "ab", "abcde"], jax.random.key(1), max_new_tokens=3, do_sample=False)
    np.testing.assert_array_equal(out.prompt_lengths, [1, 3, 6])
    assert all(length <= p + 3 for length, p in zip(out.lengths, out.prompt_lengths, strict=True))
    assert out.texts[1].startswith("ab") and out.texts[2].startswith("abcde")
    # Past a row's budget the buffer holds the end token (the pad).
    for row, p in zip(out.tokens, out.prompt_lengths, strict=True):
        assert (row[p + 3 :] == 26).all()
    # lengths: the tokens before the first end token (the whole buffer where there is none).
    first_end = [next((i for i, t in enumerate(row) if t == 26), len(row)) for row in out.tokens.tolist()]
    assert out.lengths.tolist() == first_end and first_end != [len(out.tokens[0])] * 3


def test_generate_compiles_once_per_shape():
    model = tiny_model("GraphWalkText-v0")
    generate(model, ["1", "2"], jax.random.key(0))
    size = decode_tokens._cache_size()
    for prompts in (["3", "4"], ["5", "6"]):
        generate(model, prompts, jax.random.key(1))
    assert decode_tokens._cache_size() == size


def test_top_k_and_top_p_keep_the_right_tokens():
    scores = jax.random.normal(jax.random.key(0), (64, 10)) * 2
    keys = jax.random.split(jax.random.key(1), 100)
    probs = np.asarray(jax.nn.softmax(scores, axis=-1), np.float64)
    draw = jax.jit(jax.vmap(choose_tokens, in_axes=(0, None, None, None, None)), static_argnums=(3, 4))
    for top_p in (0.3, 0.9):
        # NumPy reference: the smallest set of most likely tokens whose mass reaches top_p.
        allowed = np.zeros_like(probs, bool)
        for b, row in enumerate(probs):
            order = np.argsort(-row)
            before = np.cumsum(row[order]) - row[order]
            allowed[b, order[before < top_p]] = True
        drawn = np.asarray(draw(keys, scores, 1.0, None, top_p)).T  # [64, 100]
        assert allowed[np.arange(64)[:, None], drawn].all()
        assert (np.array([len(set(r)) for r in drawn]) <= allowed.sum(axis=1)).all()
        assert (np.array([len(set(r)) for r in drawn]) > 1).any()  # it does sample
    drawn = np.asarray(draw(keys[:50], scores, 1.0, 2, None)).T
    top2 = np.argsort(-np.asarray(scores), axis=1)[:, :2]
    assert all(set(r) <= set(t) for r, t in zip(drawn, top2, strict=True))
    np.testing.assert_array_equal(choose_tokens(keys[0], scores, top_k=1), jnp.argmax(scores, axis=-1))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"prompts": ["C"]}, ValueError, "a-z"),
        ({"prompts": ["abcdefghi"]}, ValueError, "at most 8"),
        ({"prompts": ["abcdefgh"]}, ValueError, "has 9 tokens.*at most 8"),  # bos + 8 letters fill the buffer
        ({"prompts": np.array([[27, 40]])}, ValueError, r"outside the vocabulary \[0, 28\)"),
        ({"prompts": np.array([[27, 28]])}, ValueError, r"token id\(s\) \[28\] outside the vocabulary"),
        ({"prompts": np.array([[-1, 3]])}, ValueError, r"token id\(s\) \[-1\] outside the vocabulary"),
        ({"max_new_tokens": 0}, ValueError, "max_new_tokens must be >= 1"),
        ({"max_new_tokens": 8}, ValueError, "at most 7 new tokens"),
        ({"temperature": 0.0}, ValueError, "temperature must be in"),
        ({"top_p": 0.0}, ValueError, "top_p must be in"),
        ({"top_p": 1.5}, ValueError, "top_p must be in"),
        ({"top_k": 0}, ValueError, "top_k must be >= 1"),
        ({"beta": 1.0}, ValueError, "q_params is None"),
        ({"key": 0}, TypeError, "PRNG key"),
    ],
)
def test_generate_refuses_bad_input(kwargs, error, match):
    model = tiny_model("WordGen-v0")
    args = {"prompts": ["a"], "key": jax.random.key(0), **kwargs}
    with pytest.raises(error, match=match):
        generate(model, args.pop("prompts"), args.pop("key"), **args)


def test_generate_refuses_q_params_of_another_config():
    model = tiny_model("WordGen-v0")
    other = LanguageModel(model.config.replace(d_model=8), model.params)  # refused before any use
    with pytest.raises(ValueError, match="differs from the model's"):
        generate(model, ["a"], jax.random.key(0), beta=1.0, q_params=other)
    small = jax.eval_shape(lambda: init_model(model.config.replace(d_model=8, num_heads=2), jax.random.key(0)).params)
    with pytest.raises(ValueError, match="q_params does not fit the model's config"):
        generate(model, ["a"], jax.random.key(0), beta=1.0, q_params=small)


def test_generate_takes_q_params_as_a_model_or_its_parameters():
    model = tiny_model("WordGen-v0")
    q = q_like(model)
    as_model = generate(model, ["a", "b"], jax.random.key(0), beta=2.0, q_params=q)
    as_params = generate(model, ["a", "b"], jax.random.key(0), beta=2.0, q_params=q.params)
    np.testing.assert_array_equal(as_model.tokens, as_params.tokens)


# --- pretraining data --------------------------------------------------------------------------
def test_walk_data_follows_edges_to_the_goal_then_ends():
    env, params = made("GraphWalkText-v0")
    adjacency = np.asarray(params.adjacency)
    tokens, mask = (np.asarray(x) for x in data_batch(jax.random.key(0), env, params, 500))
    end = env.vocabulary.end_id
    assert set(tokens[:, 0].tolist()) == set(range(1, 21))  # starts: every node but the goal
    for row, row_mask in zip(tokens, mask, strict=True):
        walk = [int(row[0])]
        for t in range(1, len(row)):
            if walk[-1] == 0:
                assert row[t] == end
            else:
                assert adjacency[walk[-1], row[t]], (row, t)
            if row_mask[t] and row[t] != end:
                walk.append(int(row[t]))
        # Targets: every walk token after the start, and one end token after the goal.
        reached = 0 in walk
        assert row_mask[1:].sum() == len(walk) - 1 + (reached and len(walk) < len(row))


def test_word_data_are_dictionary_words_and_noise_changes_one_letter():
    env, params = made("WordGen-v0")
    vocab, dictionary = env.vocabulary, set(word_gen.words())
    clean = vocab.decode_batch(np.asarray(data_batch(jax.random.key(0), env, params, 300, word_noise=0.0)[0]))
    assert set(clean) <= dictionary and len(set(clean)) > 250
    noisy = vocab.decode_batch(np.asarray(data_batch(jax.random.key(0), env, params, 300, word_noise=1.0)[0]))
    # Targets: the letters and the end token after them (where the buffer has room), never bos.
    _, mask = data_batch(jax.random.key(0), env, params, 300, word_noise=0.0)
    expected = [[1 <= t <= len(word) + 1 for t in range(9)] for word in clean]
    assert np.asarray(mask).tolist() == expected
    for a, b in zip(clean, noisy, strict=True):  # same words drawn (same key), one letter redrawn
        assert len(a) == len(b) and sum(x != y for x, y in zip(a, b, strict=True)) <= 1
    assert sum(a != b for a, b in zip(clean, noisy, strict=True)) > 250


def test_sequence_loss_is_the_masked_next_token_cross_entropy():
    from jrl.text.pretrain import sequence_loss

    rng = np.random.default_rng(3)
    logits = rng.normal(size=(4, 6, 5))
    tokens = rng.integers(0, 5, (4, 6))
    mask = rng.random((4, 6)) < 0.6
    log_probs = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    # Position t (t >= 1) is predicted by row t - 1 of the logits, where mask[t] is set.
    terms = [-log_probs[b, t - 1, tokens[b, t]] for b in range(4) for t in range(1, 6) if mask[b, t]]
    got = sequence_loss(jnp.asarray(logits, jnp.float32), jnp.asarray(tokens), jnp.asarray(mask))
    assert math.isclose(float(got), float(np.mean(terms)), rel_tol=1e-5)


def test_pretraining_lowers_the_loss_and_is_reproducible():
    env, params = made("GraphWalkText-v0")
    config = PretrainConfig(num_steps=60, batch_size=64, **TINY)
    calls = []
    model, losses = pretrain(jax.random.key(0), env, params, config, on_chunk=lambda n, lo: calls.append((n, lo)))
    # Ten chunks of 6 steps (what jrl pretrain shows progress between), each told the losses so far;
    # one scan over all 60 steps gives the same weights and losses, bit for bit.
    assert [n for n, _ in calls] == list(range(6, 61, 6))
    np.testing.assert_array_equal(calls[-1][1], losses)
    again, whole = pretrain(jax.random.key(0), env, params, config, chunk_steps=60)
    jax.tree_util.tree_map(np.testing.assert_array_equal, model.params, again.params)
    np.testing.assert_array_equal(losses, whole)
    assert losses[-10:].mean() < 0.6 * losses[:5].mean()
    with pytest.raises(ValueError, match="chunk_steps=7 must divide num_steps=60"):
        pretrain(jax.random.key(0), env, params, config, chunk_steps=7)


# --- soft Q-learning ---------------------------------------------------------------------------
def test_soft_value_matches_numpy():
    rng = np.random.default_rng(0)
    logits, q = rng.normal(size=(5, 7)), rng.normal(size=(5, 7))
    log_pi0 = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    beta = 3.0
    expected = np.log((np.exp(log_pi0) * np.exp(beta * q)).sum(axis=1)) / beta
    got = text_q.soft_value(jnp.asarray(log_pi0, jnp.float32), jnp.asarray(q, jnp.float32), beta)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


@pytest.mark.parametrize("td_lambda", [0.0, 0.6, 1.0])
def test_lambda_returns_match_a_float64_recursion(td_lambda):
    rng = np.random.default_rng(1)
    batch_size, steps, beta = 6, 5, 2.0
    lengths = rng.integers(1, steps + 1, batch_size)
    active = np.arange(steps)[None] < lengths[:, None]
    terminated = np.arange(steps)[None] == (lengths - 1)[:, None]
    terminated[0] = False  # row 0 is cut by a time limit: it bootstraps from V at its last token
    batch = {
        "reward": np.where(active, rng.normal(size=(batch_size, steps)), 0.0),
        "terminated": terminated,
        "active": active,
        "log_ratio": np.where(active, rng.normal(size=(batch_size, steps)), 0.0),
    }
    value = rng.normal(size=(batch_size, steps))
    got = np.asarray(
        text_q.lambda_returns({k: jnp.asarray(v) for k, v in batch.items()}, jnp.asarray(value), beta, td_lambda)
    )
    for b in range(batch_size):
        later = None
        for t in reversed(range(lengths[b])):
            if batch["terminated"][b, t]:
                g = batch["reward"][b, t]
            elif later is None:
                g = batch["reward"][b, t] + value[b, t]
            else:
                sampled = later - batch["log_ratio"][b, t + 1] / beta
                g = batch["reward"][b, t] + (1 - td_lambda) * value[b, t] + td_lambda * sampled
            assert math.isclose(got[b, t], g, rel_tol=1e-5, abs_tol=1e-5), (b, t, got[b, t], g)
            later = g


def log_softmax64(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    top = x.max(axis=-1, keepdims=True)
    return x - top - np.log(np.exp(x - top).sum(axis=-1, keepdims=True))


def test_rollout_targets_match_a_float64_recomputation_from_its_own_log_probabilities(text_run):
    """The rollout's ``log_ratio`` and ``kl`` and the lambda-returns built on them, recomputed in
    float64 NumPy from the rollout's recorded ``log pi0`` and the Q-network's full forward pass: the
    sign of every KL term is pinned (with ``pi = softmax(log pi0 + beta Q)``, ``Q(s, a) -
    log_ratio(a) / beta`` is the soft value ``V(s)`` for every token)."""
    env, params = made("GraphWalkText-v0")
    model = load_model(text_run[0])  # pretrained: its walks follow edges, so episodes have several tokens
    q = q_like(model)
    beta, td_lambda = 1.0, 0.7  # the walk-rules test's rollout shapes: one compiled program for both
    from jrl.text.metrics import sample_episodes

    batch = sample_episodes(jax.random.key(5), env, params, model, q, beta=beta, num_episodes=300)
    active = batch["active"]
    assert (active.sum(axis=1) >= 3).sum() > 30 and (active & ~batch["terminated"]).sum() > 100  # lambda carries back
    # Positions where no token was chosen (the prompt, after the end) record nothing: an episode's
    # return is the sum of its row.
    for name in ("reward", "kl", "log_ratio", "terminated"):
        assert not batch[name][~active].any(), name
    # pi0 recorded by the rollout is the model's own, and Q comes from the full (uncached) forward pass.
    tokens = batch["tokens"]
    np.testing.assert_allclose(batch["log_pi0"], log_softmax64(model.apply(tokens)[:, :-1]), atol=2e-5)
    q_values = np.asarray(q.apply(tokens), np.float64)[:, :-1]  # [N, L - 1, A]: row t scores position t + 1
    log_pi0 = np.asarray(batch["log_pi0"], np.float64)
    log_pi = log_softmax64(log_pi0 + beta * q_values)
    taken = batch["action"][..., None]
    log_ratio = np.take_along_axis(log_pi - log_pi0, taken, axis=-1)[..., 0]
    np.testing.assert_allclose(batch["log_ratio"][active], log_ratio[active], atol=1e-4)
    kl = np.sum(np.exp(log_pi) * (log_pi - log_pi0), axis=-1)
    np.testing.assert_allclose(batch["kl"][active], kl[active], atol=1e-4)
    assert kl[active].min() >= 0 and kl[active].mean() > 1e-3  # Q moves pi away from pi0: the test has teeth
    value = np.log(np.sum(np.exp(log_pi0 + beta * q_values), axis=-1)) / beta  # V(s_t), float64
    q_taken = np.take_along_axis(q_values, taken, axis=-1)[..., 0]
    np.testing.assert_allclose((q_taken - batch["log_ratio"] / beta)[active], value[active], atol=2e-4)
    # The lambda-returns on this rollout, bootstrapping from V(s_{t+1}) of the same network.
    next_value = np.concatenate([value[:, 1:], np.zeros_like(value[:, :1])], axis=1)
    got = np.asarray(
        text_q.lambda_returns(
            {k: jnp.asarray(batch[k]) for k in ("reward", "terminated", "active", "log_ratio")},
            jnp.asarray(next_value, jnp.float32),
            beta,
            td_lambda,
        )
    )
    expected = lambda_returns64(batch, log_ratio, next_value, beta, td_lambda)
    np.testing.assert_allclose(got[active], expected[active], atol=1e-3)


def test_the_first_update_s_loss_is_the_squared_soft_bellman_error_of_its_rollout():
    """Iteration 0's loss (``metrics["loss"]``: one update) recomputed in float64 NumPy from the
    rollout it trains on (iteration ``t`` uses ``fold_in(state.key, t)``): the online network's
    Q at each generated token against lambda-returns that bootstrap from the target network's soft
    values and the pretrained model's log-probabilities at the next state. Online and target
    networks differ (and are not zero), so each has its role."""
    env, params = made("GraphWalkText-v0")
    model = tiny_model("GraphWalkText-v0")
    config = text_q.TextQConfig(num_envs=32, num_steps=2, log_interval=1, beta=4.0)  # as the chunks test
    algorithm = text_q.make_algorithm(config, env, params, model=model)
    online, target = q_like(model, seed=1), q_like(model, seed=2)
    state = algorithm.init(jax.random.key(0)).replace(q_params=online.params, target=target.params)
    after, metrics = jax.jit(algorithm.run, static_argnums=1)(state, 1)
    roll = jax.jit(text_q.rollout, static_argnums=(1, 3, 7))
    batch = roll(jax.random.fold_in(state.key, 0), env, params, model.config, model.params, online.params, 4.0, 32)
    batch = jax.tree_util.tree_map(np.asarray, batch)
    beta, active, tokens = 4.0, batch["active"], batch["tokens"]
    assert active.sum() > 32 and (active & ~batch["terminated"]).any()
    q_online = np.asarray(online.apply(tokens), np.float64)[:, :-1]  # row t: the state before token t + 1
    log_pi0 = np.asarray(batch["log_pi0"], np.float64)
    log_pi = log_softmax64(log_pi0 + beta * q_online)
    taken = batch["action"][..., None]
    log_ratio = np.take_along_axis(log_pi - log_pi0, taken, axis=-1)[..., 0]
    # V(s_{t+1}) of the target network; the last position has no next state (the code pads its
    # log pi0 with zeros; a full buffer ends the episode, so it is never used).
    next_q = np.asarray(target.apply(tokens), np.float64)[:, 1:]
    next_log_pi0 = np.concatenate([log_pi0[:, 1:], np.zeros_like(log_pi0[:, :1])], axis=1)
    next_value = np.log(np.sum(np.exp(next_log_pi0 + beta * next_q), axis=-1)) / beta
    y = lambda_returns64(batch, log_ratio, next_value, beta, config.td_lambda)
    q_taken = np.take_along_axis(q_online, taken, axis=-1)[..., 0]
    loss = np.mean(np.square(q_taken - y)[active])
    assert math.isclose(float(metrics["loss"][0]), loss, rel_tol=2e-4), (float(metrics["loss"][0]), loss)
    # The interval's other metrics are per generation of this rollout.
    assert math.isclose(float(metrics["episode_return"][0]), batch["reward"].sum() / 32, rel_tol=1e-5)
    assert math.isclose(float(metrics["kl"][0]), batch["kl"].sum() / 32, rel_tol=1e-4)
    assert float(metrics["tokens"][0]) == active.sum() / 32 and int(metrics["nonfinite_updates"][0]) == 0
    # The target network moves towards the updated online network by tau (Polyak averaging).
    tau = config.tau
    jax.tree_util.tree_map(
        lambda new_target, new_online, old_target: np.testing.assert_allclose(
            new_target, tau * np.asarray(new_online) + (1 - tau) * np.asarray(old_target), rtol=1e-5, atol=1e-6
        ),
        after.target,
        after.q_params,
        target.params,
    )
    assert not np.allclose(after.q_params["params"]["head"]["kernel"], online.params["params"]["head"]["kernel"])
    # The greedy policy (evaluation's) takes the token maximising logits + beta * Q at the
    # observation's position: the Python loop's first greedy token.
    policy, policy_params = text_q.greedy_policy(config, env, params, text_q.TextQResult(online, {}), model=model)
    act = jax.jit(policy)
    for start in (3, 7, 12):
        obs = jnp.array([start] + [env.vocabulary.end_id] * 9, jnp.int32)
        greedy = reference_decode(model, [start], None, 1, q=online, beta=config.beta, greedy=True)
        assert int(act(policy_params, obs, jax.random.key(0))) == greedy[1], start


def lambda_returns64(batch: dict, log_ratio: np.ndarray, next_value: np.ndarray, beta: float, td_lambda: float):
    """The soft lambda-returns ``[N, T]`` of ``batch``'s episodes, backwards in float64 Python."""
    expected = np.zeros_like(next_value)
    for b in range(len(next_value)):
        later = None  # G_{t+1} while the episode goes on after t
        for t in np.flatnonzero(batch["active"][b])[::-1]:
            if batch["terminated"][b, t]:
                g = batch["reward"][b, t]
            elif later is None:  # cut at the buffer's end: V(s_{t+1}) alone
                g = batch["reward"][b, t] + next_value[b, t]
            else:  # V(s_{t+1}) estimated by the sampled token: Q - log_ratio / beta = G_{t+1} - log_ratio / beta
                sampled = later - log_ratio[b, t + 1] / beta
                g = batch["reward"][b, t] + (1 - td_lambda) * next_value[b, t] + td_lambda * sampled
            expected[b, t], later = g, g
    return expected


def test_rollout_rewards_and_texts_follow_the_walk_rules():
    """Episodes decoded by the rollout training uses, scored again from their text alone."""
    env, params = made("GraphWalkText-v0")
    model = tiny_model("GraphWalkText-v0")
    from jrl.text.metrics import sample_episodes

    episodes = sample_episodes(jax.random.key(0), env, params, model, q_like(model), beta=1.0, num_episodes=300)
    adjacency = np.asarray(params.adjacency)
    for text, rewards, active in zip(
        env.vocabulary.decode_batch(episodes["tokens"]), episodes["reward"], episodes["active"], strict=True
    ):
        nodes = [int(n) for n in text.split()]
        expected = []
        for a, b in zip(nodes, [*nodes[1:], None], strict=True):
            if b is None:
                if len(nodes) < 10:  # the episode ended on the end token: not an edge
                    expected.append(-10.0)
                break
            if not adjacency[a, b]:
                expected.append(-10.0)
                break
            expected.append(0.0 if b == 0 else -1.0)
            if b == 0:
                break
        assert rewards[active].tolist() == expected, (text, rewards)


def test_episode_scores_average_optimality_per_start_then_over_starts():
    """``score_episodes`` on walks and words written by hand: a shortest walk scores 1, an invalid
    one 0; optimality is the mean over start nodes of each start's mean (two walks from one start,
    one from another: 0.75, where the mean over walks would be 2/3)."""
    from jrl.text.metrics import score_episodes

    env, params = made("GraphWalkText-v0")
    adjacency, shortest, end = np.asarray(params.adjacency), np.asarray(params.shortest), env.vocabulary.end_id

    def shortest_walk(start: int) -> list[int]:
        walk = [start]
        while walk[-1] != 0:
            here = walk[-1]
            walk.append(next(j for j in range(21) if adjacency[here, j] and shortest[j] == shortest[here] - 1))
        return walk

    a, b = [s for s in range(1, 21) if shortest[s] >= 3][:2]
    invalid = [a, next(j for j in range(1, 21) if j != a and not adjacency[a, j])]
    tokens = np.full((3, 10), end, np.int32)
    for i, walk in enumerate([shortest_walk(a), invalid, shortest_walk(b)]):
        tokens[i, : len(walk)] = walk
    rng = np.random.default_rng(0)
    active = np.arange(9)[None] < np.array([[len(shortest_walk(a)) - 1], [1], [len(shortest_walk(b)) - 1]])
    episodes = {
        "tokens": tokens,
        "reward": np.where(active, rng.normal(size=(3, 9)), 0.0),
        "active": active,
        "kl": np.where(active, rng.random((3, 9)), 0.0),
    }
    scores = score_episodes(env, params, episodes)
    assert scores["optimality_per_start"] == {a: 0.5, b: 1.0} and scores["optimality"] == 0.75
    assert math.isclose(scores["success_rate"], 2 / 3)
    assert math.isclose(scores["mean_return"], episodes["reward"].sum(axis=1).mean())
    assert math.isclose(scores["kl"], episodes["kl"].sum(axis=1).mean())
    assert scores["mean_tokens"] == active.sum() / 3 and scores["distinct_texts"] == 3
    assert scores["texts"][0] == " ".join(map(str, shortest_walk(a)))
    words_env, words_params = made("WordGen-v0")
    vocab = words_env.vocabulary
    texts = ["cat", "xq", "cat"]
    word_tokens = np.array([vocab.encode(t) + [vocab.end_id] * (9 - len(vocab.encode(t))) for t in texts])
    word_episodes = {
        "tokens": word_tokens,
        "reward": np.array([[0, 0, 1.0] + [0] * 5, [0] * 8, [0, 0, 1.0] + [0] * 5]),
        "active": np.ones((3, 8), bool),
        "kl": np.zeros((3, 8)),
    }
    word_scores = score_episodes(words_env, words_params, word_episodes)
    assert math.isclose(word_scores["valid_rate"], 2 / 3) and word_scores["distinct_valid_words"] == 1
    assert word_scores["texts"] == texts and word_scores["distinct_texts"] == 2


def test_text_q_learning_starts_from_the_pretrained_model_and_runs_in_chunks():
    env, params = made("GraphWalkText-v0")
    model = tiny_model("GraphWalkText-v0")
    config = text_q.TextQConfig(num_envs=32, num_steps=2, log_interval=1, beta=4.0)
    algorithm = text_q.make_algorithm(config, env, params, model=model)
    whole = jax.jit(text_q.make_train(config, env, params, model=model))(jax.random.key(0))
    state = algorithm.init(jax.random.key(0))
    run = jax.jit(algorithm.run, static_argnums=1)
    state, first = run(state, 1)
    state, rest = run(state, 1)
    chunked = algorithm.result(state, {k: np.concatenate([first[k], rest[k]]) for k in first})
    jax.tree_util.tree_map(np.testing.assert_array_equal, whole.q_model.params, chunked.q_model.params)
    assert np.asarray(whole.metrics["finite"]).all()
    assert set(whole.metrics) == set(text_q.METRICS)  # what a sweep's curve may name
    # Q starts at 0: the first iteration decodes with the pretrained model alone (KL 0), the next not.
    assert abs(float(whole.metrics["kl"][0])) < 1e-5 < float(whole.metrics["kl"][1])
    # An env step of a text environment is a token: env_steps counts the tokens generated so far,
    # carried in the state across chunks, between one and max_steps_in_episode per generation.
    tokens = np.asarray(whole.metrics["tokens"], np.float64) * np.asarray(whole.metrics["episodes"])
    np.testing.assert_array_equal(np.asarray(whole.metrics["env_steps"]), np.cumsum(np.round(tokens)))
    np.testing.assert_array_equal(np.asarray(chunked.metrics["env_steps"]), np.asarray(whole.metrics["env_steps"]))
    per_iteration = np.diff(np.asarray(whole.metrics["env_steps"]), prepend=0.0)
    assert np.all((32 <= per_iteration) & (per_iteration <= 32 * int(params.max_steps_in_episode)))
    assert per_iteration.max() > 32  # generations write several tokens: not the count of generations


def test_text_q_learning_refuses_bad_setups(tmp_path):
    env, params = made("GraphWalkText-v0")
    with pytest.raises(ValueError, match="pretrained is empty"):
        text_q.make_algorithm(text_q.TextQConfig(), env, params)
    with pytest.raises(ValueError, match=r"pretrained: .* is not a jrl language model"):
        text_q.make_algorithm(text_q.TextQConfig(pretrained=str(tmp_path)), env, params)
    save_model(tmp_path / "words", tiny_model("WordGen-v0"))
    with pytest.raises(ValueError, match="made for WordGen-v0"):
        text_q.make_algorithm(text_q.TextQConfig(pretrained=str(tmp_path / "words")), env, params)
    cart, cart_params = made("CartPole-v1")
    with pytest.raises(ValueError, match="needs a text environment"):
        text_q.make_algorithm(text_q.TextQConfig(pretrained="x"), cart, cart_params)
    with pytest.raises(ValueError, match="beta must be in"):
        text_q.TextQConfig(beta=0.0)
    with pytest.raises(ValueError, match="td_lambda must be in"):
        text_q.TextQConfig(td_lambda=1.5)


# --- the command line --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def text_run(tmp_path_factory) -> tuple:
    """``(pretrained model directory, text_q_learning run directory)``, both made by the ``jrl``
    command (pretrain, then two iterations of training), shared by the tests that need them."""
    root = tmp_path_factory.mktemp("text")
    tiny = [f"--set={k}={v}" for k, v in TINY.items()]
    lm = root / "lm"
    # The pretraining test's settings: the compiled pretraining is reused (one process).
    steps = ["--set", "num_steps=60", "--set", "batch_size=64"]
    assert cli.main(["pretrain", "--env", "GraphWalkText-v0", *steps, *tiny, "--out", str(lm)]) == 0
    run = root / "run"
    sets = ["--set", f"pretrained={lm}", "--set", "num_steps=2", "--set", "num_envs=16"]
    argv = ["train", "--env", "GraphWalkText-v0", "--algo", "text_q_learning", *sets, "--out", str(run), "--quiet"]
    assert cli.main([*argv, "--eval-episodes", "10"]) == 0
    return lm, run


def test_pretrain_shows_progress_between_its_chunks(text_run, tmp_path, capsys):
    """`jrl pretrain` is not silent for a minute: the compilation (with the first chunk), then steps,
    loss and ETA after each chunk. The fixture's settings: its compiled program is reused."""
    tiny = [f"--set={k}={v}" for k, v in TINY.items()]
    steps = ["--set", "num_steps=60", "--set", "batch_size=64"]
    capsys.readouterr()
    assert cli.main(["pretrain", "--env", "GraphWalkText-v0", *steps, *tiny, "--out", str(tmp_path / "lm")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("compiling pretraining: 60 steps of 64 sequences")
    assert lines[1].startswith("compiled pretraining and ran its first 6 steps (loss ")
    assert [line.split(" ")[0] for line in lines[2:-1]] == [f"{n}/60" for n in range(12, 61, 6)]
    assert all(", loss " in line and ", ETA " in line for line in lines[2:-1])
    assert lines[-1].startswith("pretrained GraphWalkText-v0 in ")


def test_pretrain_train_generate_from_the_command_line(text_run, tmp_path, capsys):
    lm, run = text_run
    assert load_model(lm).config.d_model == 16
    capsys.readouterr()
    assert cli.main(["generate", str(run), "--prompt", "3", "--prompt", "5", "--num-samples", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" ")[0] for line in lines] == ["3", "3", "5", "5"] and all(
        n.isdigit() for line in lines for n in line.split(" ")
    )
    assert cli.main(["generate", str(lm), "--prompt", "33"]) == 2
    assert "33" in capsys.readouterr().err
    assert cli.main(["generate", str(lm), "--prompt", "3", "--top-p", "2"]) == 2
    assert cli.main(["pretrain", "--env", "CartPole-v1", "--out", str(tmp_path / "x")]) == 2
    assert "not a text environment" in capsys.readouterr().err


def test_generate_on_a_run_with_beta_zero_is_the_pretrained_model_alone(text_run, capsys):
    """``jrl generate RUN --beta 0`` decodes with the pretrained model alone: what ``jrl generate
    PRETRAINED`` writes with the same seed; the run's own beta (the default) and another nonzero
    beta weigh its Q-values in and write something else."""
    lm, run = text_run
    args = ["--prompt", "3", "--prompt", "5", "--prompt", "8", "--num-samples", "20", "--seed", "4"]

    def generated(*argv: str) -> list[str]:
        capsys.readouterr()
        assert cli.main(["generate", *argv, *args]) == 0
        return capsys.readouterr().out.splitlines()

    alone = generated(str(lm))
    assert len(alone) == 60 and len(set(alone)) > 5  # sampled, not one text
    assert generated(str(run), "--beta", "0") == alone
    with_q = generated(str(run))
    assert with_q != alone
    from jrl.experiment import load_run

    beta = load_run(run).spec.config.beta
    assert generated(str(run), "--beta", repr(beta)) == with_q  # the default is the run's beta
    assert generated(str(run), "--beta", "50") not in (alone, with_q)


def test_export_and_generate_a_text_run_and_a_model_from_the_command_line(text_run, tmp_path, capsys):
    """``jrl export`` of a text_q_learning run writes its language model with the Q-head and beta;
    ``jrl generate FILE`` then writes the run's own texts (float32: greedy and sampled, the same
    draws), and its int8 export generates too; a model directory exports the model alone; a seed
    for a model directory and a policy file for ``generate`` are refused."""
    lm, run = text_run
    args = ["--prompt", "3", "--prompt", "5 1", "--num-samples", "3", "--seed", "2"]

    def generated(*argv: str) -> list[str]:
        capsys.readouterr()
        assert cli.main(["generate", *argv, *args]) == 0
        return capsys.readouterr().out.splitlines()

    assert cli.main(["export", str(run), "--format", "safetensors"]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path == run / "export" / "text-seed0.safetensors"
    assert generated(str(path)) == generated(str(run))
    assert cli.main(["eval", str(path), "--env", "GraphWalkText-v0"]) == 2  # a text model is no policy file
    assert "is a text model: jrl generate decodes it" in capsys.readouterr().err
    assert generated(str(path), "--greedy") == generated(str(run), "--greedy")
    assert cli.main(["export", str(run), "--format", "numpy", "--int8", "--out", str(tmp_path / "q.npz")]) == 0
    texts = generated(str(tmp_path / "q.npz"))
    assert [text.split(" ")[0] for text in texts] == ["3"] * 3 + ["5"] * 3
    assert cli.main(["export", str(lm), "--format", "numpy"]) == 0
    alone = Path(capsys.readouterr().out.strip())
    assert alone == lm / "export" / "model.npz"
    assert generated(str(alone)) == generated(str(lm))
    assert cli.main(["export", str(lm), "--format", "numpy", "--seed", "0"]) == 2
    assert "a language model's directory has one model" in capsys.readouterr().err
    policy = tmp_path / "policy.npz"
    np.savez(policy, spec=np.array("{}"))
    assert cli.main(["generate", str(policy)]) == 2
    assert "policy.npz: not a jrl-numpy-q-policy" in capsys.readouterr().err  # neither a policy nor a text model


def test_a_failed_start_frees_out_and_the_retried_run_works_from_anywhere(text_run, tmp_path, monkeypatch, capsys):
    """Issue 21's first two cases, with the shared run's model and settings (its compiled
    programs come from the cache):

    - text_q_learning without `pretrained` fails, and the corrected command with the same --out
      then works; a failure after --out was made (here while compiling) frees it too, and an
      empty --out that existed before is left empty, not removed;
    - the run, started with `pretrained` relative to the working directory, resumes, evaluates and
      generates from another directory after its original model is deleted (the run holds a
      copy), and refuses a copy that changed."""
    import shutil
    from pathlib import Path

    from jrl.experiment import CheckpointError, checkpoint, load_run, runner

    lm, _ = text_run
    started, elsewhere = tmp_path / "started_here", tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copytree(lm, started / "lm")
    monkeypatch.chdir(started)
    argv = ["train", "--env", "GraphWalkText-v0", "--algo", "text_q_learning", "--set", "num_steps=2"]
    argv += ["--set", "num_envs=16", "--out", "run", "--quiet", "--eval-episodes", "10"]
    run = started / "run"
    assert cli.main(argv) == cli.USAGE_ERROR
    assert "pretrained is empty" in capsys.readouterr().err and not run.exists()

    def broken(*args, **kwargs):
        raise RuntimeError("XLA failed to compile")

    run.mkdir()
    with monkeypatch.context() as patch:
        patch.setattr(runner, "_train_from", broken)
        patch.setenv("TMPDIR", str(tmp_path))
        assert cli.main([*argv, "--set", "pretrained=lm"]) == cli.INTERNAL_ERROR
    assert "XLA failed to compile" in capsys.readouterr().err
    assert run.is_dir() and not any(run.iterdir())
    assert cli.main([*argv, "--set", "pretrained=lm"]) == 0
    assert 'pretrained = "inputs/pretrained"' in (run / "config.toml").read_text()
    inputs = json.loads((run / "metadata.json").read_text())["inputs"]["pretrained"]
    assert inputs["source"] == str(started / "lm")
    summary = (run / "summary.json").read_bytes()
    # From elsewhere, the original model deleted: resume the last chunk, evaluate, generate.
    shutil.rmtree(started / "lm")
    monkeypatch.chdir(elsewhere)
    relative = Path("..") / "started_here" / "run"
    shutil.rmtree(checkpoint.latest(relative / "checkpoints"))  # as if killed before the last chunk
    (relative / "summary.json").unlink()
    assert cli.main(["resume", str(relative), "--quiet"]) == 0
    assert (run / "summary.json").read_bytes() == summary
    capsys.readouterr()
    assert cli.main(["eval", str(relative), "--episodes", "10"]) == 0
    assert "text_q_learning on GraphWalkText-v0" in capsys.readouterr().out
    assert cli.main(["generate", str(relative), "--prompt", "3", "--num-samples", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(line.split(" ")[0] == "3" for line in lines)
    # The copy is the model the run trained from: a changed copy is refused, not silently used.
    weights = run / "inputs" / "pretrained" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01  # the last byte of the last tensor: still a readable model
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="inputs_sha256"):
        load_run(run).load_checkpoint()


@pytest.mark.parametrize("env_id", ["GraphWalkText-v0", "WordGen-v0"])
def test_the_experiment_run_files_are_the_default_configs(env_id):
    """``experiments/text_q_learning/<env>.toml`` (for ``jrl train --config``) write out the default."""
    from pathlib import Path

    from jrl.experiment import RunSpec

    spec = RunSpec.load(Path(__file__).resolve().parents[1] / "experiments" / "text_q_learning" / f"{env_id}.toml")
    assert (spec.algo, spec.env) == ("text_q_learning", env_id)
    assert spec.config == text_q.default_config(env_id, pretrained=spec.config.pretrained)


def test_the_experiment_samples_rescore_to_the_table():
    """``samples.jsonl`` scored with plain Python (a breadth-first search, a set) gives the
    results table's seed-0 numbers: what the README reports is what the samples show."""
    import csv
    from collections import defaultdict, deque
    from pathlib import Path

    results = Path(__file__).resolve().parents[1] / "experiments" / "text_q_learning" / "results"
    adjacency = np.asarray(made("GraphWalkText-v0")[1].adjacency)
    nodes_to_goal, queue = {0: 1}, deque([0])
    while queue:
        j = queue.popleft()
        for i in np.flatnonzero(adjacency[:, j]):
            if int(i) not in nodes_to_goal:
                nodes_to_goal[int(i)] = nodes_to_goal[j] + 1
                queue.append(int(i))
    dictionary = set(word_gen.words())
    walks, words = defaultdict(lambda: defaultdict(list)), defaultdict(list)
    for line in (results / "samples.jsonl").read_text().splitlines():
        sample = json.loads(line)
        if sample["env"] == "WordGen-v0":
            words[sample["model"]].append(sample["text"] in dictionary)
            continue
        walk = [int(n) for n in sample["text"].split()]
        assert str(walk[0]) == sample["prompt"]
        valid = all(adjacency[a, b] for a, b in itertools.pairwise(walk)) and walk[-1] == 0
        score = (10 - len(walk)) / (10 - nodes_to_goal[walk[0]]) if valid else 0.0
        walks[sample["model"]][walk[0]].append(score)
    assert {m: len(v) for m, v in words.items()} == dict.fromkeys(("random", "pretrained", "q_learning"), 1000)
    with (results / "results.csv").open() as f:
        table = {
            (r["env"], r["model"]): r
            for r in csv.DictReader(f)
            if r["seed"] == "0" and r["decoding"] == "temperature 1"
        }
    for model in ("random", "pretrained", "q_learning"):
        optimality = np.mean([np.mean(v) for v in walks[model].values()])
        assert math.isclose(
            optimality, float(table["GraphWalkText-v0", model]["optimality"]), rel_tol=1e-6
        )  # float32 metric
        assert math.isclose(np.mean(words[model]), float(table["WordGen-v0", model]["valid_rate"]), abs_tol=1e-9)
    assert np.mean(words["q_learning"]) >= 0.9 and np.mean([np.mean(v) for v in walks["q_learning"].values()]) >= 0.95


def test_a_text_sweep_runs_to_its_table(text_run, tmp_path):
    """A text learner's sweep trains, values and tabulates its members: its steps are each member's
    own token count (the env_steps metric), which must leave the compiled call."""
    from jrl.experiment import run_sweep
    from jrl.experiment.sweeps import SweepSpec

    lm, _ = text_run
    config = {"pretrained": str(lm), "num_steps": 2, "num_envs": 16}
    spec = SweepSpec.resolve(
        "text_q_learning", "GraphWalkText-v0", grid={"beta": [4.0, 8.0]}, config=config, eval_episodes=4
    )
    result = run_sweep(spec, tmp_path / "sweep", progress=False)
    assert len(result.rows) == 2 and np.isfinite(result.final_returns).all()
    assert (tmp_path / "sweep" / "results.csv").is_file()


def test_a_text_sweep_keeps_its_model_and_resumes_from_anywhere(text_run, tmp_path, monkeypatch):
    """A sweep directory, like a run directory, keeps a copy of the model its config names, and
    resumes from another working directory after the original is deleted; a changed copy is
    refused. (Interrupted before it compiles: what is checked is what it reads, not training.)"""
    import shutil

    from jrl.experiment import SweepError, resume_sweep, run_sweep, sweep_members
    from jrl.experiment.sweeps import SweepSpec

    lm, _ = text_run
    started, elsewhere = tmp_path / "started_here", tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copytree(lm, started / "lm")
    monkeypatch.chdir(started)
    read = []

    def interrupted(group, *args, **kwargs):  # before the group compiles: Ctrl-C
        read.append(group.config.pretrained)
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep_members.Group, "compiled", interrupted)
    config = {"pretrained": "lm", "num_steps": 2, "num_envs": 16}
    spec = SweepSpec.resolve("text_q_learning", "GraphWalkText-v0", grid={"beta": [4.0, 8.0]}, config=config)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, "sweep", progress=False)
    stored = (started / "sweep" / "sweep.toml").read_text()
    assert 'pretrained = "inputs/pretrained"' in stored
    assert read == [str(started / "lm")]  # the first session trains from the original (the same bytes)
    shutil.rmtree(started / "lm")
    monkeypatch.chdir(elsewhere)
    with pytest.raises(KeyboardInterrupt):
        resume_sweep("../started_here/sweep", progress=False)
    assert read[-1] == str(started / "sweep" / "inputs" / "pretrained")
    weights = started / "sweep" / "inputs" / "pretrained" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + bytes([weights.read_bytes()[-1] ^ 1]))
    with pytest.raises(SweepError, match="has changed since the sweep started"):
        resume_sweep("../started_here/sweep", progress=False)
    with pytest.raises(SweepError, match="cannot be a sweep axis"):
        SweepSpec.resolve("text_q_learning", "GraphWalkText-v0", grid={"pretrained": ["a", "b"]}, config=config)
