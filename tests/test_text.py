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

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jrl
from jrl import cli
from jrl.envs import word_gen
from jrl.text import LanguageModel, LMConfig, ModelFileError, generate, init_model, load_model, save_model
from jrl.text import q_learning as text_q
from jrl.text.generate import _decode, choose_tokens
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
def reference_decode(model, prompt_ids, key, max_new, q=None, beta=0.0, greedy=False):
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
            new = int(jax.random.categorical(jax.random.fold_in(key, i), scores[None])[0])
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


def test_generate_with_q_follows_logits_plus_beta_q_greedily():
    model = tiny_model("GraphWalkText-v0")
    q = q_like(model)
    out = generate(model, ["3", "7"], jax.random.key(0), do_sample=False, beta=1.5, q_params=q)
    for row, prompt in zip(out.tokens, ([3], [7]), strict=True):
        assert row.tolist() == reference_decode(model, prompt, None, 9, q=q, beta=1.5, greedy=True)
    assert out.texts[0].startswith("3") and out.texts[0] == jrl.text.vocabulary("GraphWalkText-v0").decode(
        out.tokens[0]
    )


def test_generate_respects_max_new_tokens_and_ragged_prompts():
    model = tiny_model("WordGen-v0")
    out = generate(model, ["", "ab", "abcde"], jax.random.key(1), max_new_tokens=3, do_sample=False)
    np.testing.assert_array_equal(out.prompt_lengths, [1, 3, 6])
    assert all(length <= p + 3 for length, p in zip(out.lengths, out.prompt_lengths, strict=True))
    assert out.texts[1].startswith("ab") and out.texts[2].startswith("abcde")
    # Past a row's budget the buffer holds the end token (the pad).
    for row, p in zip(out.tokens, out.prompt_lengths, strict=True):
        assert (row[p + 3 :] == 26).all()


def test_generate_compiles_once_per_shape():
    model = tiny_model("GraphWalkText-v0")
    generate(model, ["1", "2"], jax.random.key(0))
    size = _decode._cache_size()
    for prompts in (["3", "4"], ["5", "6"]):
        generate(model, prompts, jax.random.key(1))
    assert _decode._cache_size() == size


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
        ({"prompts": np.array([[27, 40]])}, ValueError, r"outside the vocabulary \[0, 28\)"),
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
    for a, b in zip(clean, noisy, strict=True):  # same words drawn (same key), one letter redrawn
        assert len(a) == len(b) and sum(x != y for x, y in zip(a, b, strict=True)) <= 1
    assert sum(a != b for a, b in zip(clean, noisy, strict=True)) > 250


def test_pretraining_lowers_the_loss_and_is_reproducible():
    env, params = made("GraphWalkText-v0")
    config = PretrainConfig(num_steps=60, batch_size=64, **TINY)
    model, losses = pretrain(jax.random.key(0), env, params, config)
    again, _ = pretrain(jax.random.key(0), env, params, config)
    jax.tree_util.tree_map(np.testing.assert_array_equal, model.params, again.params)
    assert losses[-10:].mean() < 0.6 * losses[:5].mean()


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
def test_pretrain_train_generate_from_the_command_line(tmp_path, capsys):
    tiny = [f"--set={k}={v}" for k, v in TINY.items()]
    lm = tmp_path / "lm"
    # The pretraining test's settings: the compiled pretraining is reused (one process).
    steps = ["--set", "num_steps=60", "--set", "batch_size=64"]
    assert cli.main(["pretrain", "--env", "GraphWalkText-v0", *steps, *tiny, "--out", str(lm)]) == 0
    assert load_model(lm).config.d_model == 16
    run = tmp_path / "run"
    sets = ["--set", f"pretrained={lm}", "--set", "num_steps=2", "--set", "num_envs=16"]
    argv = ["train", "--env", "GraphWalkText-v0", "--algo", "text_q_learning", *sets, "--out", str(run), "--quiet"]
    assert cli.main([*argv, "--eval-episodes", "10"]) == 0
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
