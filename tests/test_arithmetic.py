"""``Arithmetic-v0`` (issue 26): prompts, answers and rewards against plain Python arithmetic.

Every expectation is computed here in Python from the decoded prompt (``int`` arithmetic, a
regular expression for a well-formed number), never from the environment's own tables; episodes
run as one compiled, vmapped scan of ``step_env`` over a batch of action rows.
"""

from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jrl
from jrl.envs.arithmetic import is_test_problem

VOCAB = jrl.envs.vocabulary("Arithmetic-v0")
END = VOCAB.end_id
PROMPT = re.compile(r"(\d+)([-+*])(\d+)=")


def python_answer(prompt: str) -> int:
    a, op, b = PROMPT.fullmatch(prompt).groups()
    return {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[op]


def ids(text: str) -> list[int]:
    return [VOCAB.strings.index(c) for c in text]


@functools.cache
def made(**kwargs):
    return jrl.make("Arithmetic-v0", **kwargs)


@functools.cache
def resets(env):
    return jax.jit(jax.vmap(env.reset, in_axes=(0, None)))


@functools.cache
def player(env):
    """Jitted: ``step_env`` along each row of ``actions`` [B, T] from each state, stopping at the
    first done; returns the summed rewards, the step it ended at (-1: not done) and whether it
    was terminated or truncated there, and the final buffers."""

    def play(states, actions, params):
        def one(state, row):
            def body(carry, action):
                state, done, total, end_step, term, trunc, t = carry
                _, new, reward, terminated, truncated, _ = env.step_env(jax.random.key(0), state, action, params)
                live = ~done
                state = jax.tree_util.tree_map(lambda n, o: jnp.where(live, n, o), new, state)
                finished = live & (terminated | truncated)
                end_step = jnp.where(finished, t, end_step)
                term = jnp.where(finished, terminated, term)
                trunc = jnp.where(finished, truncated, trunc)
                total = total + jnp.where(live, reward, 0.0)
                return (state, done | finished, total, end_step, term, trunc, t + 1), None

            init = (state, False, 0.0, -1, False, False, 0)
            (state, _, total, end_step, term, trunc, _), _ = jax.lax.scan(body, init, row)
            return total, end_step, term, trunc, state.tokens

        return jax.vmap(one)(states, actions)

    return jax.jit(play)


def rows(texts, width):
    return np.asarray([ids(t) + [END] * (width - len(ids(t))) for t in texts], np.int32)


N = 512  # problems per reset batch: every test uses this shape, so the reset compiles once
CASES = (
    lambda x: str(x),
    lambda x: str(x + 1),
    lambda x: "0" + str(x),
    lambda x: "-0",
    lambda x: "",
    lambda x: str(x) + "+",
    lambda x: str(-x) if x else "-1",
    lambda x: "9" * 12,
)


@pytest.fixture(scope="module")
def episodes():
    """512 problems, each answered eight ways (``CASES``: right, off by one, leading zero, ``-0``,
    nothing, a stray ``+``, a negated answer, too long to end): ``(prompts, texts, states tiled
    [8 * 512], action rows [8 * 512, 13])``."""
    env, params = made(digits=2)
    obs, states = resets(env)(jax.random.split(jax.random.key(1), N), params)
    prompts = VOCAB.decode_batch(np.asarray(obs))
    texts = [case(python_answer(p)) for case in CASES for p in prompts]
    tiled = jax.tree_util.tree_map(lambda s: jnp.concatenate([s] * len(CASES)), states)
    return prompts, texts, tiled, rows(texts, 13)


def test_answers_and_rewards_match_python_arithmetic(episodes):
    """The reward is 1 for the right text, ``format_reward`` for another well-formed number, 0
    otherwise; the buffer filling up ends an episode with 0; the texts are the buffers'."""
    prompts, texts, states, actions = episodes
    env, params = made(digits=2, format_reward=0.25)
    assert float(made(digits=2)[1].format_reward) == 0.0 and env.length == 12 == env.observation_space().shape[0]
    assert all(PROMPT.fullmatch(p) for p in prompts)
    assert {PROMPT.fullmatch(p)[2] for p in prompts} == set("+-*")
    answers = [python_answer(p) for p in prompts]
    assert min(answers) < 0 and max(answers) > 1000  # negative differences and 4-digit products occur
    operands = [x for p in prompts for x in PROMPT.fullmatch(p).group(1, 3)]
    assert all(int(x) < 100 and str(int(x)) == x for x in operands)  # up to 2 digits, no leading zero
    total, end_step, term, trunc, final = (np.asarray(a) for a in player(env)(states, actions, params))
    for i, text in enumerate(texts):
        prompt = prompts[i % N]
        room = env.length - len(prompt) - 1  # characters after bos and the prompt
        if len(text) >= room:  # the buffer fills before the end token: terminated, reward 0
            expected, steps = 0.0, room
        elif text == str(python_answer(prompt)):
            expected, steps = 1.0, len(text) + 1
        elif re.fullmatch(r"-?[1-9]\d*|0", text) and text != "-0":
            expected, steps = 0.25, len(text) + 1
        else:
            expected, steps = 0.0, len(text) + 1
        assert total[i] == expected, (prompt, text, total[i])
        assert end_step[i] == steps - 1 and term[i], (prompt, text)
        assert not trunc[i] or steps == int(params.max_steps_in_episode)  # the limit never cuts early
        assert VOCAB.decode(final[i]) == prompt + text[:room]
    assert np.mean(total[:N]) == 1.0 and 0 < np.mean(total[N : 2 * N] == 0.25)
    # The scores recompute every answer: the right texts score 1, the off-by-one ones 0.
    assert env.text_scores(params, final[:N], total[:N]) == {"accuracy": 1.0, "well_formed": 1.0}
    assert env.text_scores(params, final[N : 2 * N], total[N : 2 * N])["accuracy"] == 0.0
    assert env.text_scores(params, final[4 * N : 5 * N], total[4 * N : 5 * N])["well_formed"] == 0.0


def test_a_shorter_time_limit_truncates(episodes):
    """``max_episode_steps=2``: every episode that the end token or a full buffer has not ended
    by its second token is truncated there; the registered limit is the most tokens 4-digit
    problems can write."""
    _, texts, states, actions = episodes
    env, params = made(digits=2)
    assert int(params.max_steps_in_episode) == 15 > env.length - 5  # never before the buffer fills
    short_env, short = made(digits=2, max_episode_steps=2)
    _, end_step, term, trunc, _ = (np.asarray(a) for a in player(short_env)(states, actions, short))
    for i, text in enumerate(texts):
        assert end_step[i] == min(len(text), 1), text
        assert trunc[i] == (len(text) >= 1) and term[i] == (len(text) <= 1), text


def test_train_and_test_problems_are_disjoint():
    """Resets of the two splits draw disjoint problems, each the documented hash puts in its split,
    about one in five a test problem; ``ops`` restricts the operations. The split and the
    operations are params: one compiled reset serves them all."""
    seen = {}
    for split, ops in (("train", "+-*"), ("test", "+-*"), ("test", "*")):
        env, params = made(digits=2, split=split, ops=ops)
        obs, _ = resets(env)(jax.random.split(jax.random.key(2), N), params)
        prompts = VOCAB.decode_batch(np.asarray(obs))
        parsed = np.asarray(
            [(int(a), "+-*".index(o), int(b)) for a, o, b in (PROMPT.fullmatch(p).groups() for p in prompts)]
        )
        assert np.asarray(is_test_problem(*parsed.T)).all() == (split == "test")
        assert not np.asarray(is_test_problem(*parsed.T)).any() == (split == "train")
        assert {p for _, p, _ in parsed} == {"+-*".index(o) for o in ops}
        seen[split, ops] = set(prompts)
        assert len(seen[split, ops]) > 0.8 * N  # thousands of problems: few repeats, no stuck draw
    assert not seen["train", "+-*"] & (seen["test", "+-*"] | seen["test", "*"])
    everything = np.asarray([(a, op, b) for a in range(100) for op in range(3) for b in range(100)])
    assert 0.18 < np.asarray(is_test_problem(*everything.T)).mean() < 0.22


def test_pretraining_data_are_train_problems_with_a_share_of_wrong_answers():
    env, params = made(digits=2)
    batch = jax.jit(lambda k, noise: env.pretraining_batch(k, params, 1000, noise))
    tokens, mask = batch(jax.random.key(5), 0.3)
    tokens, mask = np.asarray(tokens), np.asarray(mask)
    wrong = 0
    for row, row_mask in zip(tokens, mask, strict=True):
        prompt, answer = VOCAB.decode(row).split("=")
        a, op, b = PROMPT.fullmatch(prompt + "=").groups()
        assert not bool(is_test_problem(int(a), "+-*".index(op), int(b)))
        assert re.fullmatch(r"-?[1-9]\d*|0", answer) and answer != "-0"
        error = int(answer) - python_answer(prompt + "=")
        assert abs(error) <= 9
        wrong += error != 0
        # The loss is taken on the answer's characters and the end token after them.
        start = len(prompt) + 2
        assert list(np.flatnonzero(row_mask)) == list(range(start, start + len(answer) + 1))
        assert row[start + len(answer)] == END
    assert 0.25 < wrong / 1000 < 0.35
    clean, _ = batch(jax.random.key(6), 0.0)
    assert env.text_scores(params, np.asarray(clean), None)["accuracy"] == 1.0


def dropped_carries(a: int, op: str, b: int) -> int:
    """The sloppy teacher's answer, digit by digit in plain Python: ``58+67 -> 15``, ``52-38 -> 24``."""
    if op == "*":
        raise AssertionError("products are offset, not digit by digit")
    big, small = max(a, b), min(a, b)
    x, y = (a, b) if op == "+" else (big, small)
    digits = [((x // 10**i) % 10 + (1 if op == "+" else -1) * ((y // 10**i) % 10)) % 10 for i in range(2)]
    value = digits[0] + 10 * digits[1]
    return -value if op == "-" and a < b else value


def test_carry_mistakes_drop_every_carry_and_borrow():
    env, params = made(digits=2, mistake="carry")
    assert env.mistake == "carry" and made(digits=2)[0].mistake == "offset"
    tokens, _ = jax.jit(lambda k: env.pretraining_batch(k, params, 2000, 0.6))(jax.random.key(7))
    mistakes = right = 0
    for text in VOCAB.decode_batch(np.asarray(tokens)):
        prompt, answer = text.split("=")
        a, op, b = PROMPT.fullmatch(prompt + "=").groups()
        truth = python_answer(prompt + "=")
        if op == "*":  # products keep the offset mistakes
            assert abs(int(answer) - truth) <= 9
            continue
        teacher = dropped_carries(int(a), op, int(b))
        assert int(answer) in (truth, teacher), text
        right += int(answer) == truth
        mistakes += int(answer) == teacher != truth
    assert (
        dropped_carries(58, "+", 67) == 15
        and dropped_carries(52, "-", 38) == 24
        and dropped_carries(38, "-", 52) == -24
    )
    # 60% of examples get the teacher's answer; about 60% of +/- problems have a carry or borrow.
    assert 0.25 < mistakes / (mistakes + right) < 0.5


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"digits": 0}, ValueError, r"digits must be in \[1, 4\], got 0"),
        ({"digits": 5}, ValueError, r"digits must be in \[1, 4\], got 5"),
        ({"digits": "2"}, TypeError, "digits must be an int"),
        ({"ops": "/"}, ValueError, "ops must be a non-empty string of distinct characters from '\\+-\\*', got '/'"),
        ({"ops": "++"}, ValueError, "distinct"),
        ({"ops": ""}, ValueError, "non-empty"),
        ({"ops": ["+"]}, TypeError, "ops must be a str"),
        ({"split": "val"}, ValueError, r"split must be one of \['train', 'test'\], got 'val'"),
        ({"format_reward": 1.0}, ValueError, r"format_reward must be in \[0.0, 1.0\), got 1.0"),
        ({"mistake": "random"}, ValueError, r"mistake must be one of \['offset', 'carry'\], got 'random'"),
        ({"level": 3}, TypeError, r"unexpected keyword argument\(s\) \['level'\]"),
    ],
)
def test_make_refuses_bad_keywords(kwargs, error, match):
    with pytest.raises(error, match=match):
        jrl.make("Arithmetic-v0", **kwargs)


def test_the_vocabulary_encodes_prompts():
    assert VOCAB.encode("37+45=") == [VOCAB.bos_id, 3, 7, 10, 4, 5, 13]
    assert VOCAB.num_actions == 15 and VOCAB.decode([15, 3, 7, 12, 2, 13, 7, 4, END, 1]) == "37*2=74"
    with pytest.raises(ValueError, match="not a prompt token"):
        VOCAB.encode("3/4=")
