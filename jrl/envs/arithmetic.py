"""``Arithmetic-v0``: answer ``37+45=`` with ``82``, one character at a time (a verifiable reward).

A token environment (``jrl.envs.tokens``) at the character level. Tokens: ``"0"`` .. ``"9"`` (ids
0..9), ``"+"`` (10), ``"-"`` (11), ``"*"`` (12), ``"="`` (13), ``"<end>"`` (14), ``"<bos>"`` (15,
never an action): ``Discrete(15)`` actions.

Problems: ``a op b`` with ``a``, ``b`` uniform on ``0 .. 10**digits - 1`` (up to ``digits``-digit
non-negative numbers) and ``op`` uniform over ``ops`` (a string of ``+``, ``-``, ``*``). Subtraction
may go negative: the answer of ``3-45=`` is ``-42``. Keywords of ``jrl.make("Arithmetic-v0", ...)``:

- ``digits``: 1..4 (default 2);
- ``ops``: which operations, e.g. ``"+"`` or ``"+-*"`` (default), each at most once;
- ``split``: ``"train"`` (default) or ``"test"``: which problem set resets draw from;
- ``format_reward``: in [0, 1), default 0: the reward for a well-formed but wrong answer;
- ``mistake``: ``"offset"`` (default) or ``"carry"``: the pretraining data's wrong answers (below).

``digits`` and ``mistake`` are the environment's (``digits`` sets the buffer's length); ``ops``,
``split`` and ``format_reward`` are data in ``ArithmeticParams``, so one compiled program serves
them all.

The split: a problem is a test problem when a 32-bit integer hash of ``(a, op, b)``
(``problem_hash``) is divisible by 5, so about one problem in five; the split of a problem does
not depend on ``digits`` or ``ops``. Train and test sets are disjoint by construction; a reset
draws ``op`` uniformly from ``ops``, then ``(a, b)`` uniformly among that operation's problems of
its split: rejection sampling over 128 candidate pairs, 32-bit hashes of random words from the key
and the candidate's number taken modulo the range (a bias below ``10**4 / 2**32``); the first
candidate in the split is taken (if all 128 miss, probability ``0.8**128 < 1e-12``, the split's
first problem is).

The buffer holds ``L = 4 * digits + 4`` tokens: ``bos``, the prompt ``a op b =`` (at most
``2 * digits + 2`` characters), then the answer (at most ``2 * digits`` characters, a product's)
and the end token; unfilled positions hold the end token. The observation is the buffer, int32
``[L]``. Numbers are written without leading zeros (``0`` is ``"0"``), negatives with ``"-"``.

Episodes: ``reset`` writes ``bos`` and the prompt. Each step writes the action:

- the end token terminates. The reward is 1 when the characters written since the prompt are the
  exact answer; else ``format_reward`` when they are a well-formed number (an optional ``-``, then
  one or more digits without a leading zero, and no ``-0``); else 0;
- any other token: reward 0; the episode terminates when the buffer is then full (an answer that
  leaves no room for the end token is too long to be right: reward 0).

``truncated`` is ``time >= max_steps_in_episode``, Gymnasium's ``TimeLimit`` as in every jrl
environment (it may fire on a terminating step too). The registered limit, 15, is the most tokens
an episode can write with 4 digits (``L - 5``: the room after the shortest prompt, ``bos`` and
``1+2=``), so it never fires before the buffer is full; ``max_episode_steps`` sets a shorter one.

Pretraining data (``pretraining_batch``): problems of the **train** split only (whatever the
environment's own split), written with their answer and the end token; a fraction ``noise`` of
them get a wrong answer instead, so a model fine-tuned on them still errs and leaves RL room to
improve. Which wrong answer is the ``mistake`` keyword's:

- ``"offset"`` (default): the right one plus an offset uniform on ``-9..-1, 1..9``. Scattered over
  18 values, these mistakes lower a model's sampled accuracy more than its greedy one;
- ``"carry"``: a sloppy teacher's, the sum or difference computed digit by digit with carries and
  borrows dropped (``58+67=15``, ``52-38=24``, ``38-52=-24``); products get the offset. A problem
  without a carry or borrow comes out right. One wrong answer per problem, the same on every
  problem: with ``noise > 0.5`` a model learns to drop carries in greedy decoding too, and the
  right answer stays among its samples for RL to find. Scores (``text_scores``):
``accuracy``, the fraction of texts whose answer equals the prompt's, recomputed in Python from
the decoded text, and ``well_formed``, the fraction of answers that are well-formed numbers.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jrl._validation import check_choice, check_float, check_int
from jrl.envs.tokens import TokenEnv, TokenState, Vocabulary, write

__all__ = [
    "BOS",
    "END",
    "MISTAKES",
    "OPS",
    "Arithmetic",
    "ArithmeticParams",
    "ArithmeticState",
    "arithmetic_factory",
    "is_test_problem",
    "problem_hash",
    "solve",
    "vocabulary",
]

OPS = "+-*"  # op codes 0, 1, 2: also the order of their tokens
PLUS, MINUS, TIMES, EQUALS = 10, 11, 12, 13
END = 14
BOS = 15  # the last id: not an action
MAX_DIGITS = 4  # 9999 * 9999 fits in int32; the hash is exact on every operand
MISTAKES = ("offset", "carry")  # the pretraining data's wrong answers (Arithmetic.mistake)
TEST_EVERY = 5  # a problem is a test problem when its hash is divisible by 5
CANDIDATES = 128  # operand pairs a reset draws to find one in its split
TIME_LIMIT = 4 * MAX_DIGITS - 1  # the most tokens an episode writes with 4 digits: it never cuts one short

_VOCABULARY = Vocabulary(
    strings=(*"0123456789", "+", "-", "*", "=", "<end>", "<bos>"),
    end_id=END,
    bos_id=BOS,
    separator="",
    num_actions=BOS,
)


def vocabulary() -> Vocabulary:
    """Digits ``"0"`` .. ``"9"`` (ids 0..9), ``+ - * =`` (10..13), ``"<end>"`` (14), ``"<bos>"`` (15);
    15 actions; joined by ``""``."""
    return _VOCABULARY


def _mix(x: jax.Array) -> jax.Array:
    """A 32-bit integer finaliser (Wellons' lowbias32): every input bit changes about half the
    output bits, so ``hash % 5`` splits neighbouring problems independently. uint32 in and out."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def problem_hash(a: Any, op: Any, b: Any) -> jax.Array:
    """The split's hash of problem ``a OPS[op] b``: uint32, elementwise over int arrays (pure JAX,
    so ``jit``/``vmap``; NumPy or Python ints work too)."""
    a, op, b = (jnp.asarray(v).astype(jnp.uint32) for v in (a, op, b))
    return _mix(_mix(a * jnp.uint32(10007) + op) ^ (b + jnp.uint32(0x9E3779B9)))


def is_test_problem(a: Any, op: Any, b: Any) -> jax.Array:
    """Whether ``a OPS[op] b`` belongs to the test split (bool, elementwise; see the module docstring)."""
    return problem_hash(a, op, b) % jnp.uint32(TEST_EVERY) == 0


@functools.cache
def _first_problems(digits: int) -> np.ndarray:
    """``[split (train, test), op, (a, b)]`` int32: each op's first problem of each split in the
    order ``a * 10**digits + b`` (the stand-in when a reset's candidates all miss its split)."""
    with jax.ensure_compile_time_eval():  # host constants, also when first asked inside a trace
        high = 10**digits
        index = np.arange(min(high * high, 10_000))
        a, b = index // high, index % high
        table = np.zeros((2, 3, 2), np.int32)
        for op in range(3):
            test = np.asarray(is_test_problem(a, np.full_like(a, op), b))
            for split in (0, 1):
                i = int(np.argmax(test == bool(split)))
                table[split, op] = a[i], b[i]
    table.setflags(write=False)
    return table


def solve(prompt: str) -> str:
    """The answer text of a prompt such as ``"37+45="`` (``"82"``), in plain Python (host side)."""
    match = re.fullmatch(r"(\d+)([-+*])(\d+)=", prompt)
    if match is None:
        raise ValueError(f"not an arithmetic prompt (like '37+45='): {prompt!r}")
    a, op, b = int(match[1]), match[2], int(match[3])
    return str(a + b if op == "+" else a - b if op == "-" else a * b)


def _number(value: jax.Array, width: int) -> tuple[jax.Array, jax.Array]:
    """``value`` (int32, ``|value| < 10**(width - 1)`` when negative, ``< 10**width`` otherwise)
    written as tokens: ``(tokens int32 [width], count int32)``, end-padded, ``-`` first when negative."""
    magnitude = jnp.abs(value)
    powers = jnp.asarray([10**i for i in range(width)], jnp.int32)
    significant = jnp.maximum(jnp.sum(magnitude >= powers), 1)  # "0" has one digit
    sign = (value < 0).astype(jnp.int32)
    count = significant + sign
    index = jnp.arange(width)
    # Digit at text position i (after the sign): 10**(significant - 1 - (i - sign)).
    exponent = jnp.clip(significant - 1 - (index - sign), 0, width - 1)
    digit = (magnitude // powers[exponent]) % 10
    tokens = jnp.where(index < sign, MINUS, digit)
    return jnp.where(index < count, tokens, END).astype(jnp.int32), count.astype(jnp.int32)


def _concatenate(pieces: list[tuple[jax.Array, jax.Array]], length: int) -> tuple[jax.Array, jax.Array]:
    """Variable-length pieces ``(tokens [w], count)`` one after another into an end-padded buffer
    ``[length]``: ``(buffer, total count)``."""
    buffer = jnp.full((length,), END, jnp.int32)
    offset = jnp.int32(0)
    for tokens, count in pieces:
        index = jnp.arange(tokens.shape[0])
        where = jnp.where(index < count, offset + index, length)  # past the end: dropped
        buffer = buffer.at[where].set(tokens, mode="drop")
        offset = offset + count
    return buffer, offset


def _single(token: int) -> tuple[jax.Array, jax.Array]:
    return jnp.asarray([token], jnp.int32), jnp.int32(1)


def _apply(op: jax.Array, a: jax.Array, b: jax.Array) -> jax.Array:
    return jnp.select([op == 0, op == 1], [a + b, a - b], a * b).astype(jnp.int32)


def _digitwise(op: jax.Array, a: jax.Array, b: jax.Array, digits: int) -> jax.Array:
    """``a op b`` computed digit by digit with every carry (``+``) or borrow (``-``) dropped, the
    mistake of ``mistake="carry"``: ``58+67 -> 15`` (``5+6``, ``8+7``: ``1``, ``5``), ``52-38 -> 24``
    (``5-3``, ``2-8`` mod 10 ``= 4``); a negative difference is the negated one of ``b - a``. Multiplication:
    the right product (the caller offsets it instead). int32, elementwise."""
    powers = jnp.asarray([10**i for i in range(digits)], jnp.int32)
    big, small = jnp.maximum(a, b), jnp.minimum(a, b)
    a_digits, b_digits = (a // powers) % 10, (b // powers) % 10
    big_digits, small_digits = (big // powers) % 10, (small // powers) % 10
    plus = jnp.sum(((a_digits + b_digits) % 10) * powers)
    minus = jnp.sum(((big_digits - small_digits) % 10) * powers) * jnp.where(a < b, -1, 1)
    return jnp.select([op == 0, op == 1], [plus, minus], a * b).astype(jnp.int32)


def _well_formed(answer: jax.Array, count: jax.Array) -> jax.Array:
    """Whether the first ``count`` tokens of ``answer`` ``[W]`` are a well-formed number."""
    index = jnp.arange(answer.shape[0])
    signed = answer[0] == MINUS
    first = jnp.where(signed, answer[1], answer[0])  # the first digit
    digits_ok = jnp.all(jnp.where((index < count) & ~((index == 0) & signed), answer < 10, True))
    size = count - signed.astype(jnp.int32)
    no_leading_zero = (first != 0) | ((size == 1) & ~signed)
    return (size >= 1) & digits_ok & no_leading_zero


@functools.partial(jax.jit, static_argnums=(0, 1))
def _compiled(method: Any, env: Arithmetic, *args: Any) -> Any:
    """``method(env, *args)`` as one compiled call: run eagerly (op by op) the problem writing
    would compile a hundred small programs; inside another ``jit`` or ``vmap`` it is inlined."""
    return method(env, *args)


@struct.dataclass
class ArithmeticParams:
    """Which problems, the format reward and the time limit (data, so one compiled program serves
    every split and set of operations)."""

    ops: jax.Array  # bool [3]: which of + - * problems use
    test_split: jax.Array  # bool: resets draw test problems (else train problems)
    format_reward: jax.Array  # float32, the reward for a well-formed wrong answer
    max_steps_in_episode: jax.Array  # int32


@struct.dataclass
class ArithmeticState(TokenState):
    """``TokenState`` plus ``answer``: int32 ``[2 * digits + 1]``, the right answer's tokens,
    end-padded (what the written answer, with its end token, must equal)."""

    answer: jax.Array


@dataclasses.dataclass(frozen=True)
class Arithmetic(TokenEnv):
    """Arithmetic problems, answered character by character (see the module docstring).

    Args:
        digits: operands have up to this many digits, 1..4 (it sets the buffer's length). Which
            operations and which split are the params' (``ArithmeticParams``; ``jrl.make``'s
            ``ops`` and ``split`` keywords set them).
        mistake: the wrong answers of the pretraining data's noisy share (``pretraining_batch``):
            ``"offset"`` (the right answer plus or minus 1..9) or ``"carry"`` (carries and borrows
            dropped, a systematic mistake; products offset). Rewards and problems do not depend on it.
    """

    digits: int = 2
    mistake: str = "offset"

    def __post_init__(self) -> None:
        check_int("digits", self.digits, 1, MAX_DIGITS)
        check_choice("mistake", self.mistake, MISTAKES)

    @property
    def vocabulary(self) -> Vocabulary:
        return _VOCABULARY

    @property
    def length(self) -> int:  # type: ignore[override]  # a property here: it depends on digits
        """The buffer's ``L = 4 * digits + 4``."""
        return 4 * self.digits + 4

    @property
    def default_params(self) -> ArithmeticParams:
        return ArithmeticParams(
            ops=jnp.ones(3, bool),
            test_split=jnp.bool_(False),
            format_reward=jnp.float32(0.0),
            max_steps_in_episode=jnp.int32(TIME_LIMIT),
        )

    def _draw(self, key: jax.Array, ops: jax.Array, test: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """``(a, op code, b)`` int32: ``op`` uniform over the operations ``ops`` (bool ``[3]``),
        then ``(a, b)`` uniform over that operation's problems in the split ``test`` names."""
        high = jnp.uint32(10**self.digits)
        words = jax.random.bits(key, (3,), jnp.uint32)
        # The op: the (words[0] mod count)-th allowed one.
        allowed = ops.astype(jnp.int32)
        op = jnp.argmax(jnp.cumsum(allowed) > (words[0] % jnp.sum(allowed).astype(jnp.uint32)).astype(jnp.int32))
        op = op.astype(jnp.int32)
        # Rejection sampling, vectorised: CANDIDATES operand pairs hashed from the key's words
        # (counter-based: cheap to compile and to run eagerly, unlike threefry), the first in
        # the split taken. All miss with probability 0.8**128 < 1e-12; the split's first problem
        # stands in then, so the splits stay disjoint.
        counter = jnp.arange(CANDIDATES, dtype=jnp.uint32)
        a = (_mix(words[1] ^ _mix(2 * counter + 1)) % high).astype(jnp.int32)
        b = (_mix(words[2] ^ _mix(2 * counter + 2)) % high).astype(jnp.int32)
        hit = is_test_problem(a, op, b) == test
        first = jnp.argmax(hit)
        fallback = jnp.asarray(_first_problems(self.digits))[test.astype(jnp.int32), op]
        found = jnp.any(hit)
        return jnp.where(found, a[first], fallback[0]), op, jnp.where(found, b[first], fallback[1])

    def _write_problem(self, a: jax.Array, op: jax.Array, b: jax.Array) -> tuple:
        """``(buffer [L] with bos and the prompt, prompt length incl. bos, answer tokens [2D + 1])``."""
        width = 2 * self.digits
        op_token = (PLUS + op).astype(jnp.int32)
        buffer, count = _concatenate(
            [
                _single(BOS),
                _number(a, self.digits),
                (op_token[None], jnp.int32(1)),
                _number(b, self.digits),
                _single(EQUALS),
            ],
            self.length,
        )
        answer, _ = _number(_apply(op, a, b), width)
        return buffer, count, jnp.concatenate([answer, jnp.asarray([END], jnp.int32)])

    def reset_env(self, key: jax.Array, params: ArithmeticParams) -> tuple[jax.Array, ArithmeticState]:
        return _compiled(type(self)._reset, self, key, params)

    def _reset(self, key: jax.Array, params: ArithmeticParams) -> tuple[jax.Array, ArithmeticState]:
        buffer, count, answer = self._write_problem(*self._draw(key, params.ops, params.test_split))
        state = ArithmeticState(tokens=buffer, position=count, prompt_length=count, time=jnp.int32(0), answer=answer)
        return state.tokens, state

    def step_env(self, key: jax.Array, state: ArithmeticState, action: jax.Array, params: ArithmeticParams):
        return _compiled(type(self)._step, self, key, state, action, params)

    def _step(self, key: jax.Array, state: ArithmeticState, action: jax.Array, params: ArithmeticParams) -> tuple:
        del key
        action = jnp.asarray(action, jnp.int32)
        tokens, position = write(state, action, self.length)
        ended = action == END
        # The answer written so far, end-padded: the buffer's tokens from the prompt on.
        width = state.answer.shape[0]
        written = jnp.take(tokens, state.prompt_length + jnp.arange(width), mode="fill", fill_value=END)
        correct = jnp.all(written == state.answer)
        well_formed = _well_formed(written, position - state.prompt_length - 1)
        reward = jnp.where(ended, jnp.where(correct, 1.0, jnp.where(well_formed, params.format_reward, 0.0)), 0.0)
        terminated = ended | (position >= self.length)
        new = state.replace(tokens=tokens, position=position, time=state.time + 1)
        truncated = new.time >= params.max_steps_in_episode  # Gymnasium's TimeLimit: also on a terminating step
        return new.tokens, new, reward.astype(jnp.float32), terminated, truncated, {}

    def pretraining_batch(
        self, key: jax.Array, params: ArithmeticParams, batch_size: int, noise: float = 0.1
    ) -> tuple[jax.Array, jax.Array]:
        """Train-split problems with their answers, a fraction ``noise`` of them written with the
        environment's ``mistake`` (see the module docstring): ``(tokens int32 [B, L], mask bool [B, L])``,
        the mask on the answer's characters and its end token."""
        k_problem, k_wrong = jax.random.split(key)
        draw = lambda k: self._draw(k, params.ops, jnp.bool_(False))  # noqa: E731
        a, op, b = jax.vmap(draw)(jax.random.split(k_problem, batch_size))
        wrong = jax.random.uniform(k_wrong, (batch_size,)) < noise
        # The offset from the same draw's low bits: 1..9, its sign from the next bit.
        bits = jax.random.bits(jax.random.fold_in(k_wrong, 1), (batch_size,), jnp.uint32)
        offset = (bits % 9 + 1).astype(jnp.int32) * jnp.where((bits >> 8) & 1, 1, -1)
        width = 2 * self.digits
        limits = jnp.asarray([10**width, 10 ** (width - 1)], jnp.int32)  # the room, positive and negative

        def example(a, op, b, wrong, offset):
            buffer, count = _concatenate(
                [_single(BOS), _number(a, self.digits), ((PLUS + op)[None], jnp.int32(1)), _number(b, self.digits)],
                self.length,
            )
            value = _apply(op, a, b) + jnp.where(wrong, offset, 0)
            # A wrong answer must fit the answer's room: a 2D-digit product plus 9 may not, then minus it.
            value = jnp.where(jnp.abs(value) >= limits[(value < 0).astype(jnp.int32)], value - 2 * offset, value)
            if self.mistake == "carry":  # sums and differences digit by digit: fits the room, may be right
                value = jnp.where(wrong & (op != 2), _digitwise(op, a, b, self.digits), value)
            prompt, prompt_count = _concatenate([(buffer, count), _single(EQUALS)], self.length)
            answer, answer_count = _number(value, width)
            tokens, total = _concatenate([(prompt, prompt_count), (answer, answer_count), _single(END)], self.length)
            positions = jnp.arange(self.length)
            return tokens, (positions >= prompt_count) & (positions < total)

        return jax.vmap(example)(a, op, b, wrong, offset)

    def text_scores(self, params: ArithmeticParams, tokens: np.ndarray, returns: np.ndarray) -> dict[str, Any]:
        """``accuracy``: the fraction of texts whose answer is the prompt's (recomputed in Python by
        ``solve`` from the decoded text); ``well_formed``: the fraction whose answer is a
        well-formed number."""
        del params, returns
        right = formed = 0
        texts = _VOCABULARY.decode_batch(tokens)
        for text in texts:
            prompt, _, answer = text.partition("=")
            right += answer == solve(prompt + "=")
            formed += re.fullmatch(r"-?[1-9]\d*|0", answer) is not None and answer != "-0"
        return {"accuracy": right / max(len(texts), 1), "well_formed": formed / max(len(texts), 1)}


def arithmetic_factory(
    env_id: str,
    max_steps_in_episode: int,
    digits: int = 2,
    ops: str = OPS,
    split: str = "train",
    format_reward: float = 0.0,
    mistake: str = "offset",
) -> tuple[Arithmetic, ArithmeticParams]:
    """Registry factory: ``digits`` (1..4), ``ops`` (a string from ``"+-*"``), ``split``
    (``"train"``/``"test"``), ``format_reward`` in [0, 1), ``mistake`` (``"offset"``/``"carry"``:
    the pretraining data's wrong answers)."""
    del env_id
    env = Arithmetic(digits, mistake)
    if not isinstance(ops, str):
        raise TypeError(f"ops must be a str of operations from {OPS!r}, got {type(ops).__name__} {ops!r}")
    if not ops or any(c not in OPS for c in ops) or len(set(ops)) != len(ops):
        raise ValueError(f"ops must be a non-empty string of distinct characters from {OPS!r}, got {ops!r}")
    check_choice("split", split, ("train", "test"))
    params = env.default_params.replace(
        ops=jnp.asarray([c in ops for c in OPS]),
        test_split=jnp.bool_(split == "test"),
        format_reward=jnp.float32(check_float("format_reward", format_reward, 0.0, 1.0, high_open=True)),
    )
    return env, params.replace(max_steps_in_episode=jnp.int32(max_steps_in_episode))
