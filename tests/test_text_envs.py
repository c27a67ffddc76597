"""The text environments (issue 10): ``GraphWalkText-v0`` and ``WordGen-v0``.

Everything is checked against independent computations written here: the graph's shortest walks
against a relaxation of our own, the optimality metric and the step rules against plain-Python
re-implementations of their definitions, WordGen's rewards against Python ``set`` membership
(every dictionary word, one-letter changes of each, random letters), the documented graph draw
re-derived from ``jax.random``; plus the vocabularies, the ``Tokens`` space, purity, jit/vmap,
static shapes and tracing. Compiled functions are shared: episodes run as one vmapped scan of
``step_env`` per environment, whatever the batch (padded to ``BATCH``).
"""

from __future__ import annotations

import dataclasses
import functools
import string

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jrl
from jrl.envs import graph_walk_text as gwt
from jrl.envs import word_gen as wg
from jrl.envs.tokens import positions

GRAPH_SEEDS = (0, 1, 7, 123_456)
BATCH = 2048  # episodes per compiled call (every batch is padded to a multiple of it)
LETTERS = string.ascii_lowercase


# --------------------------------------------------------------------------------------------
# Shared compiled functions and the plain-Python references.
# --------------------------------------------------------------------------------------------


@functools.cache
def _made(env_id, **kwargs):
    return jrl.make(env_id, **kwargs)


@functools.cache
def _reset_batch(env):
    return jax.jit(jax.vmap(env.reset, in_axes=(0, None)))


@functools.cache
def _play(env):
    """Jitted: ``step_env`` along each row of ``actions`` [B, T] from each state, no reset,
    recording every step (steps after the episode ended are not meaningful; callers stop there)."""

    @chex.assert_max_traces(n=1)
    def play(states, actions, params):
        def one(state, row):
            def body(state, action):
                obs, state, reward, terminated, truncated, info = env.step_env(jax.random.key(0), state, action, params)
                return state, (obs, reward, terminated, truncated, state, info)

            return jax.lax.scan(body, state, row)[1]

        return jax.vmap(one)(states, actions)

    return jax.jit(play)


def run_episodes(env, params, keys_seed, make_actions, count):
    """Reset ``count`` episodes, build their actions from the reset states with ``make_actions(obs)
    -> int [T]`` (host side) and play them; returns (reset obs, actions, records) as NumPy."""
    padded = -(-count // BATCH) * BATCH
    keys = jax.random.split(jax.random.key(keys_seed), padded)
    obs0, states = jax.device_get(_reset_batch(env)(keys, params))
    actions = np.array([make_actions(o) for o in obs0[:count]] + [[0] * env.length] * (padded - count), np.int32)
    records = [jax.device_get(_play(env)(*_chunk((states, actions), i), params)) for i in range(0, padded, BATCH)]
    records = jax.tree.map(lambda *xs: np.concatenate(xs)[:count], *records)
    return obs0[:count], actions[:count], records


def _chunk(tree, i):
    return jax.tree.map(lambda x: x[i : i + BATCH], tree)


def python_shortest(adjacency):
    """Nodes on a shortest walk to node 0 (start included), by repeated relaxation; None: unreachable."""
    n = len(adjacency)
    best = [None] * n
    best[0] = 1
    for _ in range(n):
        for i in range(1, n):
            for j in range(n):
                if adjacency[i][j] and best[j] is not None and (best[i] is None or best[j] + 1 < best[i]):
                    best[i] = best[j] + 1
    return best


def python_optimality(tokens, adjacency, shortest):
    """ILQL's definition; the walk is the tokens before the first end token (21), L = 10."""
    walk = []
    for token in tokens:
        if token == 21:
            break
        walk.append(token)
    for i, node in enumerate(walk):
        if not 0 <= node < 21:
            return 0.0
        if node == 0:
            return (10 - (i + 1)) / (10 - shortest[walk[0]])
        if i + 1 == len(walk):  # stopped before the goal
            return 0.0
        if not (0 <= walk[i + 1] < 21 and adjacency[node][walk[i + 1]]):
            return 0.0
    return 0.0


def python_walk_steps(start, actions, adjacency, limit, penalty=-10.0):
    """GraphWalkText's rules step by step until the episode ends: [(tokens, reward, terminated, truncated)]."""
    tokens, position, out = [start] + [21] * 9, 1, []
    for t, action in enumerate(actions):
        current = tokens[position - 1]
        tokens[position] = action
        position += 1
        if action == 21 or not adjacency[current][action]:
            reward, terminated = penalty, True
        elif action == 0:
            reward, terminated = 0.0, True
        else:
            reward, terminated = -1.0, position == 10
        out.append((list(tokens), reward, terminated, t + 1 >= limit))  # TimeLimit's rule: both may fire
        if terminated or t + 1 >= limit:
            return out
    return out


def python_word_steps(prompt, actions, dictionary, limit):
    """WordGen's rules step by step until the episode ends: [(text, tokens, reward, terminated, truncated)]."""
    letters, out = list(prompt), []
    for t, action in enumerate(actions):
        if action == 26:
            text = "".join(letters)
            tokens = [27] + [LETTERS.index(c) for c in text] + [26] * (8 - len(text))
            out.append((text, tokens, float(text in dictionary), True, t + 1 >= limit))
            return out
        letters.append(LETTERS[action])
        text = "".join(letters)
        terminated = len(letters) == 8
        tokens = [27] + [LETTERS.index(c) for c in text] + [26] * (8 - len(text))
        reward = float(terminated and text in dictionary)
        out.append((text, tokens, reward, terminated, t + 1 >= limit))
        if terminated or t + 1 >= limit:
            return out
    return out


# --------------------------------------------------------------------------------------------
# The Tokens space.
# --------------------------------------------------------------------------------------------


def test_tokens_space_sample_contains_and_attributes():
    space = jrl.Tokens(7, 5)
    assert jrl.spaces.Tokens is jrl.Tokens
    assert space.shape == (5,) and space.dtype == jnp.int32 and repr(space) == "Tokens(7, 5)"
    assert space == jrl.Tokens(7, 5) and space != jrl.Tokens(7, 6) and space != jrl.Tokens(8, 5)
    x = jax.jit(jax.vmap(space.sample))(jax.random.split(jax.random.key(0), 20_000))
    assert x.shape == (20_000, 5) and x.dtype == jnp.int32
    counts = np.bincount(np.asarray(x).ravel(), minlength=7)
    assert counts.size == 7 and np.all(np.abs(counts / x.size - 1 / 7) < 5 * np.sqrt(1 / 7 * 6 / 7 / x.size))
    assert bool(jnp.all(jax.vmap(space.contains)(x)))
    cases = [
        ([0, 6, 3, 2, 1], True),
        ([0, 7, 3, 2, 1], False),
        ([0, -1, 3, 2, 1], False),
        ([0, 1.5, 3, 2, 1], False),
        ([0.0, 1.0, 3.0, 2.0, 1.0], True),
        ([0, 1, 2, 3], False),
        ([[0, 1, 2, 3, 4]], False),
        (3, False),
    ]
    for value, expected in cases:
        result = space.contains(jnp.asarray(value))
        assert result.shape == () and bool(result) is expected, value
    traced = jax.jit(space.contains)(jnp.array([0, 7, 3, 2, 1], jnp.int32))
    assert not bool(traced)


def test_tokens_space_check_and_validation():
    space = jrl.Tokens(4, 3)
    space.check([0, 3, 1])
    space.check(np.array([2.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match=r"obs\[1\]=4 is out of range; Tokens\(4, 3\) holds ids 0..3"):
        space.check([0, 4, 1], "obs")
    with pytest.raises(ValueError, match=r"obs\[2\]=-1 is out of range"):
        space.check([0, 1, -1], "obs")
    with pytest.raises(ValueError, match=r"obs\[0\]=0.5 is not an integer"):
        space.check([0.5, 1, 1], "obs")
    with pytest.raises(ValueError, match=r"obs must have shape \(3,\) \(Tokens\(4, 3\)\), got shape \(2,\)"):
        space.check([0, 1], "obs")
    with pytest.raises(TypeError, match="numeric"):
        space.check("abc", "obs")
    for n, length in ((0, 3), (3, 0), (2.5, 3), (3, True), (-1, 2)):
        with pytest.raises(ValueError, match="must be an int >= 1"):
            jrl.Tokens(n, length)


# --------------------------------------------------------------------------------------------
# Vocabularies.
# --------------------------------------------------------------------------------------------


def test_vocabularies_are_the_interface():
    graph, words = jrl.envs.vocabulary("GraphWalkText-v0"), jrl.envs.vocabulary("WordGen-v0")
    assert graph.strings == (*map(str, range(21)), "<end>")
    assert (graph.end_id, graph.bos_id, graph.separator, graph.num_actions, graph.size) == (21, None, " ", 22, 22)
    assert words.strings == (*LETTERS, "<end>", "<bos>")
    assert (words.end_id, words.bos_id, words.separator, words.num_actions, words.size) == (26, 27, "", 27, 28)
    for env_id, vocab in (("GraphWalkText-v0", graph), ("WordGen-v0", words)):
        env, params = _made(env_id)
        assert env.vocabulary == vocab and gwt.vocabulary() == graph and wg.vocabulary() == words
        assert env.observation_space(params) == jrl.Tokens(vocab.size, env.length)
        assert env.action_space(params) == jrl.Discrete(vocab.num_actions) and env.num_actions == vocab.num_actions
    with pytest.raises(ValueError, match=r"'CartPole-v1' is not a text environment.*CartPole.*no vocabulary"):
        jrl.envs.vocabulary("CartPole-v1")
    with pytest.raises(ValueError, match=r"unknown environment id 'WordGen-v9'"):
        jrl.envs.vocabulary("WordGen-v9")
    assert jrl.text.vocabulary is jrl.envs.vocabulary


def test_vocabulary_encode_decode_round_trips():
    graph, words = gwt.vocabulary(), wg.vocabulary()
    assert graph.encode("3 7 12") == [3, 7, 12] and graph.encode("  20\t0 ") == [20, 0] and graph.encode("") == []
    assert words.encode("hello") == [27, 7, 4, 11, 11, 14] and words.encode("") == [27]
    rng = np.random.default_rng(0)
    for _ in range(200):
        walk = " ".join(str(n) for n in rng.integers(0, 21, size=rng.integers(0, 10)))
        assert graph.decode(graph.encode(walk)) == walk
        text = "".join(rng.choice(list(LETTERS), size=rng.integers(0, 9)))
        assert words.decode(words.encode(text)) == text
        # Padded to a buffer with end tokens, and as a JAX array, decodes the same.
        buffer = words.encode(text) + [26] * (9 - len(text) - 1)
        assert words.decode(jnp.asarray(buffer, jnp.int32)) == text
    # decode stops at the first end token (not printed) and skips bos; decode_batch does each row.
    assert words.decode([27, 2, 0, 19, 26, 0, 26]) == "cat" and words.decode([]) == ""
    assert graph.decode(np.array([4, 9, 0, 21, 5])) == "4 9 0" and graph.decode([21, 3]) == ""
    assert words.decode_batch(np.array([[27, 8, 19, 26], [27, 26, 1, 1], [27, 0, 1, 2]])) == ["it", "", "abc"]


def test_vocabulary_refuses_bad_input():
    graph, words = gwt.vocabulary(), wg.vocabulary()
    with pytest.raises(ValueError, match=r"'H'.*allowed are the characters a-z"):
        words.encode("Hello")
    with pytest.raises(ValueError, match=r"'1'.*a-z"):
        words.encode("ab1")
    with pytest.raises(ValueError, match=r"'25'.*allowed are the tokens 0-20"):
        graph.encode("3 25")
    with pytest.raises(ValueError, match=r"'<end>'.*special token"):
        graph.encode("3 <end>")
    with pytest.raises(ValueError, match=r"'3,7'"):
        graph.encode("3,7")
    with pytest.raises(TypeError, match="str"):
        words.encode([1, 2])
    with pytest.raises(ValueError, match=r"shape \(2, 2\).*decode_batch"):
        words.decode(np.zeros((2, 2), int))
    with pytest.raises(ValueError, match=r"token 28 at index \(1,\)"):
        words.decode([27, 28])
    with pytest.raises(ValueError, match=r"token -1"):
        graph.decode([3, -1])
    with pytest.raises(TypeError, match="integer"):
        graph.decode([1.0, 2.0])
    with pytest.raises(ValueError, match="2-D"):
        words.decode_batch([27, 1])
    with pytest.raises(ValueError, match="bos_id"):
        jrl.envs.Vocabulary(("a", "<end>", "<bos>"), end_id=1, bos_id=1, separator="", num_actions=2)
    with pytest.raises(ValueError, match="num_actions"):
        jrl.envs.Vocabulary(("a", "<end>", "<bos>"), end_id=1, bos_id=2, separator="", num_actions=3)
    with pytest.raises(ValueError, match="distinct"):
        jrl.envs.Vocabulary(("a", "a"), end_id=1, bos_id=None, separator="", num_actions=2)


def test_positions_is_the_first_end_token():
    rng = np.random.default_rng(1)
    buffers = rng.integers(0, 5, size=(500, 7)).astype(np.int32)  # end id 4, often absent
    expected = [row.tolist().index(4) if 4 in row else 7 for row in buffers]
    got = jax.jit(jax.vmap(lambda b: positions(b, 4)))(buffers)
    assert got.dtype == jnp.int32 and got.tolist() == expected
    assert positions(jnp.asarray(buffers), 4).tolist() == expected  # batched directly too
    assert int(positions(jnp.array([4, 4], jnp.int32), 4)) == 0


# --------------------------------------------------------------------------------------------
# GraphWalkText-v0: the graph, the metric, the rules.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("graph_seed", GRAPH_SEEDS)
def test_graph_conditions_and_shortest_walks(graph_seed):
    env, params = _made("GraphWalkText-v0", graph_seed=graph_seed)
    adjacency = np.asarray(params.adjacency)
    assert adjacency.shape == (21, 21) and adjacency.dtype == bool
    assert params.shortest.dtype == jnp.int32 and params.invalid_penalty.dtype == jnp.float32
    assert int(params.max_steps_in_episode) == 9 and float(params.invalid_penalty) == -10.0
    assert not adjacency.diagonal().any(), "self loops"
    assert not adjacency[0].any(), "node 0 is the goal: no way out"
    reference = python_shortest(adjacency.tolist())
    assert all(r is not None and 1 <= r <= 9 for r in reference), reference  # reachable in time
    assert np.asarray(params.shortest).tolist() == reference
    assert gwt.shortest_walk_lengths(adjacency).tolist() == reference
    np.testing.assert_array_equal(gwt.random_graph(graph_seed), adjacency)
    assert env.default_params.shortest.tolist() == reference  # the env made with this seed


def test_graph_density_seeds_and_the_documented_draw():
    graphs = [np.asarray(_made("GraphWalkText-v0", graph_seed=s)[1].adjacency) for s in GRAPH_SEEDS]
    # 20 rows (node 0's is empty) of 20 possible edges each; conditioned on reaching node 0.
    density = np.mean([g[1:].sum() / 400 for g in graphs])
    assert 0.07 < density < 0.16, density
    assert all(not np.array_equal(a, b) for i, a in enumerate(graphs) for b in graphs[i + 1 :])
    _, again = jrl.make("GraphWalkText-v0", graph_seed=GRAPH_SEEDS[1])
    np.testing.assert_array_equal(np.asarray(again.adjacency), graphs[1])
    # The module docstring's rule, redone: the first fold_in(key(seed), attempt) Bernoulli(0.1)
    # draw that, cleaned, reaches node 0 from every node within 9 nodes.
    for seed, graph in zip(GRAPH_SEEDS[:2], graphs[:2], strict=True):
        for attempt in range(500):
            draw = np.array(jax.random.bernoulli(jax.random.fold_in(jax.random.key(seed), attempt), 0.1, (21, 21)))
            np.fill_diagonal(draw, False)
            draw[0] = False
            if all(r is not None and r <= 9 for r in python_shortest(draw.tolist())):
                break
        np.testing.assert_array_equal(draw, graph)


def _walks(rng, adjacency, count):
    """Token buffers of every kind: valid walks (random edges, to the goal or the limit), shortest
    walks, walks with a corrupted step, an early end token, tokens after the goal, random tokens."""
    shortest = python_shortest(adjacency)
    out = []
    for k in range(count):
        node, walk = int(rng.integers(1, 21)), []
        kind = k % 6
        walk.append(node)
        while len(walk) < 10 and node != 0:
            choices = [j for j in range(21) if adjacency[node][j]]
            if kind == 1:  # shortest
                choices = [j for j in choices if shortest[j] == shortest[node] - 1]
            node = int(rng.choice(choices))
            walk.append(node)
        if kind == 2:  # one step corrupted (sometimes still valid: the reference decides)
            walk[int(rng.integers(1, len(walk))) if len(walk) > 1 else 0] = int(rng.integers(0, 21))
        if kind == 3:  # an end token somewhere: cut there, or followed by the rest of the walk
            cut = int(rng.integers(0, len(walk) + 1))
            walk = walk[:cut] + ([21, *walk[cut + 1 :]] if k % 12 == 3 else [])
        if kind == 4:  # anything after the goal is ignored
            walk = walk + [int(t) for t in rng.integers(0, 22, size=10 - len(walk))]
        if kind == 5:
            walk = [int(t) for t in rng.integers(0, 22, size=int(rng.integers(0, 11)))]
        out.append((walk + [21] * 10)[:10])
    return np.array(out, np.int32)


@functools.cache
def _optimality():
    @chex.assert_max_traces(n=1)
    def optimality(walks, params):
        return jax.vmap(gwt.walk_optimality, in_axes=(0, None))(walks, params)

    return jax.jit(optimality)


@pytest.mark.parametrize("graph_seed", GRAPH_SEEDS[:3])
def test_walk_optimality_is_ilql_s_definition(graph_seed):
    _, params = _made("GraphWalkText-v0", graph_seed=graph_seed)
    adjacency = np.asarray(params.adjacency).tolist()
    shortest = python_shortest(adjacency)
    rng = np.random.default_rng(graph_seed)
    walks = _walks(rng, adjacency, 3000)
    walks[0] = [0] + [21] * 9  # starting at the goal: optimal (1)
    # Ids outside the vocabulary are no nodes (not clipped to one): a valid walk from node 20
    # written from 25, or with a -1 before its goal, scores 0.
    from_20 = next(w for w in _walks(rng, adjacency, 600)[1::6].tolist() if w[0] == 20)
    walks[1] = [25, *from_20[1:]]
    walks[2] = [*from_20[: from_20.index(0)], -1, *from_20[from_20.index(0) + 1 :]]
    expected = np.array([python_optimality(w.tolist(), adjacency, shortest) for w in walks], np.float32)
    got = np.asarray(_optimality()(walks, params))
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=0)
    assert expected[0] == 1.0 and expected[1] == 0.0 and expected[2] == 0.0
    # Every kind of outcome occurred: optimal, suboptimal, and each way to fail.
    assert np.sum(expected == 1.0) > 300 and np.sum((expected > 0) & (expected < 1)) > 100
    assert np.sum(expected == 0.0) > 1000


@pytest.mark.parametrize("limit", [None, 3])
@pytest.mark.parametrize("graph_seed", GRAPH_SEEDS[:2])
def test_graph_walk_steps_follow_the_rules(graph_seed, limit):
    env, params = _made("GraphWalkText-v0", graph_seed=graph_seed)
    if limit is not None:
        params = params.replace(max_steps_in_episode=jnp.int32(limit))
    adjacency = np.asarray(params.adjacency).tolist()
    rng = np.random.default_rng(100 + graph_seed)
    kinds = iter(range(10**9))

    def make_actions(obs):
        start, kind = int(obs[0]), next(kinds) % 4
        if kind == 0:  # uniformly random tokens: almost always invalid at once
            return rng.integers(0, 22, size=10)
        walk, node = [], start
        for _ in range(10):  # random edges (then end tokens once at the goal)
            choices = [j for j in range(21) if node < 21 and adjacency[node][j]] or [21]
            node = int(rng.choice(choices))
            walk.append(node)
        if kind == 2:  # one random token in the walk
            walk[int(rng.integers(0, 9))] = int(rng.integers(0, 22))
        if kind == 3:  # an end token in the walk
            walk[int(rng.integers(0, 9))] = 21
        return walk

    obs0, actions, (obs, reward, terminated, truncated, state, _) = run_episodes(
        env, params, graph_seed, make_actions, 4096
    )
    assert set(obs0[:, 0].tolist()) == set(range(1, 21)) and np.all(obs0[:, 1:] == 21)
    outcomes = {"goal": 0, "invalid": 0, "full": 0, "truncated": 0}
    for e in range(len(actions)):
        expected = python_walk_steps(int(obs0[e, 0]), actions[e].tolist(), adjacency, limit or 9)
        for t, (tokens, r, term, trunc) in enumerate(expected):
            assert obs[e, t].tolist() == tokens, (e, t)
            assert (float(reward[e, t]), bool(terminated[e, t]), bool(truncated[e, t])) == (r, term, trunc), (e, t)
            assert int(state.position[e, t]) == t + 2 and int(state.time[e, t]) == t + 1
        _, r, term, trunc = expected[-1]
        outcomes["goal"] += r == 0.0
        outcomes["invalid"] += r == -10.0
        outcomes["full"] += term and r == -1.0
        outcomes["truncated"] += trunc and not term
    assert outcomes["goal"] > 200 and outcomes["invalid"] > 1000
    if limit is None:
        assert outcomes["full"] > 20 and outcomes["truncated"] == 0
    else:
        assert outcomes["truncated"] > 100 and outcomes["full"] == 0


# --------------------------------------------------------------------------------------------
# WordGen-v0: the dictionary, the rules, the prompt.
# --------------------------------------------------------------------------------------------


def test_dictionary_file():
    words = wg.words()
    assert len(words) == 3000 and len(set(words)) == 3000
    assert all(2 <= len(w) <= 8 and set(w) <= set(LETTERS) for w in words)
    assert words[:3] == ("the", "to", "and")  # most frequent first, as shipped
    _, params = _made("WordGen-v0")
    children, is_word = np.asarray(params.trie_children), np.asarray(params.trie_is_word)
    assert children.dtype == np.int32 and children.shape[1] == 26 and is_word.shape == (children.shape[0],)
    assert np.asarray(params.first_letters).tolist() == [c in {w[0] for w in words} for c in LETTERS]
    assert float(params.word_reward) == 1.0 and int(params.max_steps_in_episode) == 8


def _letters_then_end(text):
    return [LETTERS.index(c) for c in text] + [26] * (9 - len(text))


def _check_word_episodes(env, params, obs0, actions, records, prompts, limit=8):
    obs, reward, terminated, truncated, state, _ = records
    dictionary = set(wg.words())
    prefixes = {w[:i] for w in dictionary for i in range(len(w) + 1)}
    vocab = env.vocabulary
    rewarded = {}
    for e in range(len(actions)):
        expected = python_word_steps(prompts[e], actions[e].tolist(), dictionary, limit)
        for t, (text, tokens, r, term, trunc) in enumerate(expected):
            assert obs[e, t].tolist() == tokens, (e, t, text)
            assert (float(reward[e, t]), bool(terminated[e, t]), bool(truncated[e, t])) == (r, term, trunc), (e, text)
            assert (int(state.trie_node[e, t]) >= 0) == (text in prefixes), (e, t, text)
        text, _, r, _, _ = expected[-1]
        assert vocab.decode(obs[e, len(expected) - 1]) == text
        rewarded[text] = r
    return rewarded


@functools.cache
def _is_word():
    @chex.assert_max_traces(n=1)
    def is_word(buffers, params):
        return jax.vmap(wg.is_word, in_axes=(0, None))(buffers, params)

    return jax.jit(is_word)


def test_every_word_is_rewarded_and_one_letter_changes_are_not():
    env, params = _made("WordGen-v0")
    words = wg.words()
    dictionary = set(words)
    rng = np.random.default_rng(2)
    changed = []
    for word in words:
        i = int(rng.integers(len(word)))
        variant = word[:i] + rng.choice([c for c in LETTERS if c != word[i]]) + word[i + 1 :]
        if variant not in dictionary:
            changed.append(variant)
    texts = list(words) + changed
    assert len(changed) > 2000
    texts_iter = iter(texts)
    obs0, actions, records = run_episodes(env, params, 3, lambda _: _letters_then_end(next(texts_iter)), len(texts))
    assert np.all(obs0 == [27] + [26] * 8)
    rewarded = _check_word_episodes(env, params, obs0, actions, records, [""] * len(texts))
    assert all(rewarded[w] == 1.0 for w in words)
    assert all(rewarded[w] == 0.0 for w in changed)
    # is_word on the final buffers is the same test.
    final = records[0][np.arange(len(texts)), [min(len(w), 7) for w in texts]]
    assert np.asarray(_is_word()(final, params)).tolist() == [w in dictionary for w in texts]


def test_random_letters_are_rewarded_exactly_when_a_word():
    env, params = _made("WordGen-v0")
    rng = np.random.default_rng(3)
    words = wg.words()

    def make_actions(_):
        if rng.random() < 0.3:  # a prefix of a word, then end: sometimes a word itself
            word = words[int(rng.integers(len(words)))]
            return _letters_then_end(word[: int(rng.integers(0, len(word) + 1))])
        letters = rng.integers(0, 26, size=9)
        letters[int(rng.integers(0, 10)) :] = 26  # end somewhere, or 8 letters that fill the buffer
        return letters

    obs0, actions, records = run_episodes(env, params, 4, make_actions, 4096)
    rewarded = _check_word_episodes(env, params, obs0, actions, records, [""] * 4096)
    assert rewarded[""] == 0.0
    assert sum(rewarded.values()) > 100 and len(rewarded) - sum(rewarded.values()) > 1000
    assert any(len(t) == 8 for t in rewarded)
    # A limit below 8 truncates instead, and the same rules hold up to it.
    short = params.replace(max_steps_in_episode=jnp.int32(3))
    obs0, actions, records = run_episodes(env, short, 4, make_actions, 2048)
    _check_word_episodes(env, short, obs0, actions, records, [""] * 2048, limit=3)
    assert np.any(records[3][:, 2]) and not np.any(records[3][:, :2])


def test_prompted_mode_writes_a_first_letter_that_starts_a_word():
    env, params = _made("WordGen-v0", prompted=True)
    assert env.prompted and env != _made("WordGen-v0")[0]
    words = wg.words()
    starts = {w[0] for w in words}
    rng = np.random.default_rng(5)

    def make_actions(obs):
        prompt = LETTERS[int(obs[1])]
        if rng.random() < 0.5:  # a word with this first letter: rewarded, prompt included
            candidates = [w for w in words if w[0] == prompt]
            return _letters_then_end(candidates[int(rng.integers(len(candidates)))][1:])[:9]
        return rng.integers(0, 27, size=9)

    obs0, actions, records = run_episodes(env, params, 6, make_actions, 4096)
    prompts = [LETTERS[int(o[1])] for o in obs0]
    assert set(prompts) == starts and np.all(obs0[:, 0] == 27) and np.all(obs0[:, 2:] == 26)
    counts = np.bincount(obs0[:, 1], minlength=26)[[LETTERS.index(c) for c in sorted(starts)]]
    assert counts.min() > 4096 / len(starts) / 2, counts  # uniform over the starting letters
    _, states = _reset_batch(env)(jax.random.split(jax.random.key(6), 4), params)
    assert states.position.tolist() == [2] * 4 and states.prompt_length.tolist() == [2] * 4
    rewarded = _check_word_episodes(env, params, obs0, actions, records, prompts, limit=8)
    assert sum(rewarded.values()) > 1000 and all(t[0] in starts for t in rewarded)


# --------------------------------------------------------------------------------------------
# Registration, purity, auto-reset, jit/vmap, shapes, tracing.
# --------------------------------------------------------------------------------------------


def test_registered_with_their_limits_and_keywords_checked():
    assert {"GraphWalkText-v0", "WordGen-v0"} <= set(jrl.registered_envs())
    assert int(_made("GraphWalkText-v0")[1].max_steps_in_episode) == 9
    assert int(_made("WordGen-v0")[1].max_steps_in_episode) == 8
    with pytest.raises(ValueError, match="graph_seed must be in"):
        jrl.make("GraphWalkText-v0", graph_seed=-1)
    with pytest.raises(TypeError, match="graph_seed must be an int"):
        jrl.make("GraphWalkText-v0", graph_seed=1.0)
    with pytest.raises(TypeError, match="prompted must be a bool"):
        jrl.make("WordGen-v0", prompted="yes")
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['prompted'\]"):
        jrl.make("GraphWalkText-v0", prompted=True)
    # The graph is data: environments on different graphs are equal and share compiled code.
    assert _made("GraphWalkText-v0")[0] == _made("GraphWalkText-v0", graph_seed=1)[0]


@pytest.mark.parametrize("env_id", ["GraphWalkText-v0", "WordGen-v0"])
def test_pure_auto_reset_and_static_shapes(env_id):
    env, params = _made(env_id)
    key = jax.random.key(11)
    first = env.reset(key, params)
    chex.assert_trees_all_equal(first, env.reset(key, params), jax.jit(env.reset)(key, params))
    obs, state = first
    length = env.length
    assert obs.shape == (length,) and obs.dtype == jnp.int32 and bool(env.observation_space(params).contains(obs))
    assert (int(state.position), int(state.prompt_length), int(state.time)) == (1, 1, 0)
    step = jax.jit(env.step)
    end = env.vocabulary.end_id
    out = step(key, state, jnp.int32(end), params)  # the end token ends both episodes at once
    chex.assert_trees_all_equal(out, step(key, state, jnp.int32(end), params), env.step(key, state, end, params))
    new_obs, new_state, reward, terminated, truncated, info = out
    assert bool(terminated) and not bool(truncated)
    assert float(reward) == (-10.0 if env_id == "GraphWalkText-v0" else 0.0)
    final = np.asarray(info["final_observation"])
    assert (
        final[int(state.position)] == end
        and final.tolist()[: int(state.position)] == obs.tolist()[: int(state.position)]
    )
    # Auto-reset: a fresh episode from the step's reset key.
    chex.assert_trees_all_equal((new_obs, new_state), env.reset(jax.random.split(key)[1], params))
    # (Shapes and dtypes never change along an episode: test_conformance.py.)


def test_one_compiled_step_serves_every_graph_and_vmaps_over_graphs():
    env, _ = _made("GraphWalkText-v0")
    params = [_made("GraphWalkText-v0", graph_seed=s)[1] for s in GRAPH_SEEDS]

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(key, state, action, params):
        return env.step(key, state, action, params)

    rng = np.random.default_rng(9)
    for i, p in enumerate(params):
        _, state = env.reset(jax.random.key(i), p)
        for t in range(6):
            state = step(jax.random.key(t), state, jnp.int32(rng.integers(0, 22)), p)[1]
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *params)
    _, states = jax.vmap(env.reset)(jax.random.split(jax.random.key(0), len(params)), stacked)
    actions = jnp.array(
        [int(np.flatnonzero(np.asarray(p.adjacency)[s])[0]) for p, s in zip(params, states.tokens[:, 0], strict=True)]
    )
    batched = jax.vmap(env.step)(jax.random.split(jax.random.key(1), len(params)), states, actions, stacked)
    for i, p in enumerate(params):
        alone = step(
            jax.random.split(jax.random.key(1), len(params))[i],
            jax.tree.map(lambda x, i=i: x[i], states),
            actions[i],
            p,
        )
        chex.assert_trees_all_equal(jax.tree.map(lambda x, i=i: x[i], batched), alone)
    assert not np.any(np.asarray(batched[2]) == -10.0)  # each took an edge of its own graph


def test_word_gen_step_compiles_once_for_any_params_and_prompt_state():
    env, params = _made("WordGen-v0")
    other = params.replace(word_reward=jnp.float32(2.5))

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(key, state, action, params):
        return env.step_env(key, state, action, params)

    _, state = env.reset(jax.random.key(0), params)
    for letter, p in zip("cat", (params, other, other), strict=True):
        _, state, reward, *_ = step(jax.random.key(0), state, jnp.int32(LETTERS.index(letter)), p)
    _, _, reward, terminated, *_ = step(jax.random.key(0), state, jnp.int32(26), other)
    assert float(reward) == 2.5 and bool(terminated)
    prompted, _ = _made("WordGen-v0", prompted=True)
    _, state = prompted.reset(jax.random.key(0), params)  # same state pytree: no new trace
    step(jax.random.key(0), state, jnp.int32(0), params)


# --------------------------------------------------------------------------------------------
# What the text layer asks of a token environment.
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Bare(jrl.envs.TokenEnv):
    """A token environment that answers nothing of its own (no pretraining data, no scores)."""

    length = 3

    @property
    def vocabulary(self):
        return gwt.vocabulary()


def test_the_text_layer_asks_the_environment():
    from jrl.text.metrics import score_episodes
    from jrl.text.pretrain import data_batch, pretrain

    for env_id, names in (
        ("GraphWalkText-v0", ["optimality", "optimality_per_start", "success_rate"]),
        ("WordGen-v0", ["valid_rate", "distinct_valid_words"]),
    ):
        env, params = _made(env_id)
        tokens, mask = env.pretraining_batch(jax.random.key(0), params, 5)
        assert tokens.shape == mask.shape == (5, env.length) and tokens.dtype == jnp.int32 and mask.dtype == bool
        same = data_batch(jax.random.key(0), env, params, 5)
        assert np.array_equal(tokens, same[0]) and np.array_equal(mask, same[1])
        episodes = {"tokens": np.asarray(tokens), "reward": np.ones((5, env.length - 1), np.float32)}
        episodes |= {"kl": np.zeros((5, env.length - 1)), "active": np.ones((5, env.length - 1))}
        assert list(env.text_scores(params, episodes["tokens"], np.ones(5))) == names
        assert list(score_episodes(env, params, episodes))[-len(names) :] == names
    # An environment without scores of its own gets the shared ones; without data, no pretraining.
    bare = Bare(env_id="test/Bare-v0")
    assert bare.text_scores(None, np.zeros((2, 3), np.int32), np.zeros(2)) == {}
    with pytest.raises(NotImplementedError, match="test/Bare-v0 offers no pretraining data"):
        bare.pretraining_batch(jax.random.key(0), None, 2)
    for env, match in (
        (bare, "test/Bare-v0 offers no pretraining data"),
        (jrl.make("CartPole-v1")[0], "CartPole-v1 is not a text"),
    ):
        with pytest.raises(ValueError, match=match):
            data_batch(jax.random.key(0), env, None, 2)
        with pytest.raises(ValueError, match=match):
            pretrain(jax.random.key(0), env, None)
