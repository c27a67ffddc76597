"""``Tasks-v0``: answer the prompts of a user's JSONL file, one token at a time (a verifiable reward).

A token environment (``jrl.envs.tokens``) made from a file of prompt/answer pairs, one JSON object
per line::

    {"prompt": "What is 6 times 7? ", "answer": "42"}
    {"prompt": "Capital of France: ", "answer": "Paris", "split": "test"}

Blank lines are skipped; other keys are ignored; ``"split"`` (``"train"`` or ``"test"``) is
optional. A bad line is refused with its number and what is wrong (not JSON, not an object, a
missing or non-string ``prompt``/``answer``, an empty answer, text the tokenizer cannot encode).
The file is parsed as JSON only: nothing in it is executed.

Keywords of ``jrl.make("Tasks-v0", ...)``:

- ``path``: the JSONL file (default: a small bundled example of arithmetic word problems,
  ``jrl/envs/data/tasks.jsonl``);
- ``tokenizer``: ``None`` (default) for a character vocabulary: the file's characters plus the
  characters of numbers (``0-9 + - .`` and space), ``"<end>"`` and ``"<bos>"``, in that order
  (characters sorted by code point); or a Hugging Face directory holding ``tokenizer.json`` (or the
  file itself), read with the ``tokenizers`` library (the ``hf`` extra): the vocabulary of a
  GPT-2-family model ``jrl.text.load_model`` reads. Its end token is ``config.json``'s
  ``eos_token_id``, else ``tokenizer_config.json``'s ``eos_token``, else ``<|endoftext|>``; it
  has no bos token, so prompts must not be empty;
- ``reward``: ``"exact"`` (default) or ``"numeric"`` (below); ``format_reward`` in [0, 1), default
  0: the reward of a well-formed answer that is wrong;
- ``split``: ``"train"`` (default) or ``"test"``: which problems resets draw. A line with a
  ``"split"`` field is in that split; any other is a test problem when the first 8 hex digits of
  the SHA-256 of its prompt's UTF-8 bytes, read as an integer, are below ``test_fraction * 2**32``
  (``test_fraction`` in [0, 1), default 0.2): deterministic, and lines with the same prompt fall on
  the same side. The two splits are disjoint sets of lines; the train split must not be empty, nor
  the split resets draw from;
- ``margin`` (default 4): answer tokens allowed beyond the longest answer's, or ``length``: the
  buffer's length ``L`` itself (at most a Hugging Face model's ``n_positions``; a text learner reads
  the model's first ``L`` positions), so that the answer budget is what is left. Give one of them.

Shapes (static, from the file): ``P`` = the longest prompt in tokens (``bos`` included for the
character vocabulary), ``A`` = the longest answer in tokens plus ``margin`` (the answer budget),
``L = P + A + 1``. The observation is the buffer, int32 ``[L]``: the prompt from position 0, then
the answer; unfilled positions hold the end token.

Episodes: ``reset`` draws a problem uniformly from the split (its index from the key) and writes
its prompt. Each step writes the action. The episode terminates when the action is the end token,
or when ``A + 1`` tokens have been written without one (the budget is spent: reward 0). At the end
token the reward is computed in JAX on the token ids written since the prompt (the answer):

- ``reward="exact"``: 1 when the answer's ids are the reference answer's ids (its encoding by the
  vocabulary; a tokenizer's other spelling of the same text is not exact); else ``format_reward``
  when the answer is not empty; else 0;
- ``reward="numeric"``: 1 when the answer's text and the reference answer are equal numbers; else
  ``format_reward`` when the answer's text is a number; else 0. A number is (a regular
  expression) ``[ \\t\\n\\r]*[+-]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)[ \\t\\n\\r]*``: no exponents, no
  thousands separators; two numbers are equal when their decimal values are (``"7.0"``, ``"007"``,
  ``"+7"``, ``" 7"`` all equal ``"7"``; ``"-0"`` equals ``"0"``; ``".5"`` equals ``"0.5"``). In JAX the
  comparison is exact on the digits (no floating point): the integer digits right-aligned, the
  fraction's left-aligned, zero-padded, and the sign of a non-zero value. Every reference answer
  must be a number (a line whose answer is not is refused). The answer's text is the concatenation
  of its tokens' texts (a table from token id to characters; for a tokenizer, each token's text is
  ``tokenizer.decode([id])``: exact for byte-level BPE such as GPT-2's, whose text is its tokens'
  bytes in order); a token whose text is longer than 16 characters is never part of a number.

``truncated`` is ``time >= max_steps_in_episode``, Gymnasium's ``TimeLimit`` (registered without
one: every episode terminates within ``A + 1`` steps). One compiled program serves both splits and
every ``format_reward`` (they are params); ``reward`` and the file's shapes are the environment's.

Pretraining data (``pretraining_batch``): train-split problems with their reference answers and the
end token, the mask on the answer and its end token; a fraction ``noise`` of them get another
train problem's answer instead (drawn uniformly: wrong unless the two answers agree). Scores
(``text_scores``): ``accuracy`` and ``well_formed``, recomputed in Python from the token ids (each
buffer's prompt found among the file's prompts, the answer compared by the environment's rule).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jrl._extras import install_hint
from jrl._validation import check_choice, check_float, check_int
from jrl.envs.tokens import TokenEnv, TokenState, Vocabulary, write

__all__ = [
    "EXAMPLE_PATH",
    "TaskSet",
    "Tasks",
    "TasksParams",
    "TasksState",
    "TokenizerVocabulary",
    "number_form",
    "read_tasks",
    "tasks_factory",
]

#: The bundled example file ``jrl.make("Tasks-v0")`` reads by default.
EXAMPLE_PATH = str(Path(__file__).parent / "data" / "tasks.jsonl")
END_STRING, BOS_STRING = "<end>", "<bos>"
NUMBER_CHARACTERS = "0123456789+-. "  # always in the character vocabulary: numbers can be written
MAX_TOKEN_CHARS = 16  # a longer token's text is never part of a number
# Character classes of the numeric reward's table: digits are their value.
PLUS, MINUS, DOT, SPACE, OTHER, NONE = 10, 11, 12, 13, 14, 15
_CLASSES = {"+": PLUS, "-": MINUS, ".": DOT, " ": SPACE, "\t": SPACE, "\n": SPACE, "\r": SPACE}
_NUMBER = re.compile(r"[ \t\n\r]*([+-]?)([0-9]*)(?:\.([0-9]*))?[ \t\n\r]*")


class TokenizerVocabulary(Vocabulary):
    """A ``Vocabulary`` whose text goes through a Hugging Face tokenizer (a ``tokenizers.Tokenizer``,
    as ``jrl.text.hf.HFTokenizer`` reads it): ``strings`` are its tokens' names (``Ġ7``), ``encode``
    is the tokenizer's, ``decode`` stops at ``end_id`` and skips special tokens. No bos token.
    Equal (and hashed) by the tokenizer's JSON and the end token.

    Args:
        tokenizer: the ``tokenizers.Tokenizer``.
        end_id: its end-of-text token (GPT-2's ``eos_token_id``).
    """

    def __init__(self, tokenizer: Any, end_id: int) -> None:
        size = tokenizer.get_vocab_size(with_added_tokens=True)
        strings = tuple(tokenizer.id_to_token(i) or f"<unused {i}>" for i in range(size))
        super().__init__(strings, int(end_id), None, "", size)
        object.__setattr__(self, "tokenizer", tokenizer)
        object.__setattr__(self, "recipe", tokenizer.to_str())

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"encode takes a str, got {type(text).__name__} {text!r}")
        return list(self.tokenizer.encode(text).ids)

    def decode(self, tokens: Any) -> str:
        return self.decode_batch(self._ids(tokens, 1, "decode")[None])[0]

    def decode_batch(self, tokens: Any) -> list[str]:
        rows = [
            row[: row.index(self.end_id)] if self.end_id in row else row
            for row in self._ids(tokens, 2, "decode_batch").tolist()
        ]
        return self.tokenizer.decode_batch(rows, skip_special_tokens=True)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TokenizerVocabulary) and (self.recipe, self.end_id) == (other.recipe, other.end_id)

    def __hash__(self) -> int:
        return hash((self.recipe, self.end_id))

    def __repr__(self) -> str:
        return f"TokenizerVocabulary(size={self.size}, end_id={self.end_id})"


def number_form(text: str, width: int) -> tuple[bool, bool, np.ndarray, np.ndarray]:
    """``(is a number, negative, integer digits, fraction digits)`` of ``text`` by the numeric
    reward's rule (module docstring): the digits int8 ``[width]``, the integer's right-aligned and the
    fraction's left-aligned, zero-padded; ``negative`` only for a non-zero value. Not a number
    (``False, False, zeros, zeros``) also when a part has more than ``width`` digits."""
    zeros = np.zeros(width, np.int8)
    match = _NUMBER.fullmatch(text)
    if match is None or not (match[2] or match[3]):
        return False, False, zeros, zeros
    whole, fraction = match[2], match[3] or ""
    if len(whole) > width or len(fraction) > width:
        return False, False, zeros, zeros
    integer, decimals = zeros.copy(), zeros.copy()
    integer[width - len(whole) :] = [int(c) for c in whole]
    decimals[: len(fraction)] = [int(c) for c in fraction]
    return True, match[1] == "-" and bool(integer.any() or decimals.any()), integer, decimals


@dataclasses.dataclass(frozen=True, eq=False)
class TaskSet:
    """A task file encoded once: the problems as fixed-shape arrays (read-only NumPy) and the
    vocabulary. Equal (and hashed) by ``digest``, the SHA-256 of the file's bytes, the vocabulary
    and the shapes, so an environment holding it stays a valid static argument of ``jit``.

    Attributes:
        path: the file, as read (absolute).
        vocabulary: the character vocabulary or a ``TokenizerVocabulary``.
        prompt_tokens: ``P``, the longest prompt in tokens (bos included where there is one).
        answer_tokens: ``A``, the answer budget in tokens (the end token not counted).
        prompts: int32 ``[M, L]``, each problem's buffer after reset (prompt, end-padded).
        prompt_lengths: int32 ``[M]``.
        answers: int32 ``[M, A + 1]``, the reference answers' ids and the end token, end-padded.
        answer_texts: the reference answers (``M`` strings).
        test: bool ``[M]``, the test split's problems.
        lines: the file's line number of each problem (``M``).
        token_texts: each token id's text for the numeric reward (``""`` for end and bos).
    """

    path: str
    digest: str
    vocabulary: Vocabulary
    prompt_tokens: int
    answer_tokens: int
    prompts: np.ndarray
    prompt_lengths: np.ndarray
    answers: np.ndarray
    answer_texts: tuple[str, ...]
    test: np.ndarray
    lines: tuple[int, ...]
    token_texts: tuple[str, ...]

    @property
    def length(self) -> int:
        """The buffer's ``L = P + A + 1``."""
        return self.prompt_tokens + self.answer_tokens + 1

    @property
    def chars_per_token(self) -> int:
        """``K``: characters the numeric table holds per token (1 for characters, 16 for a tokenizer)."""
        return 1 if not isinstance(self.vocabulary, TokenizerVocabulary) else MAX_TOKEN_CHARS

    @property
    def number_width(self) -> int:
        """``W = A * K``: the most characters of an answer the numeric reward reads."""
        return self.answer_tokens * self.chars_per_token

    def char_table(self) -> tuple[np.ndarray, np.ndarray]:
        """``(classes int8 [V, K], counts int32 [V])``: each token's characters as the numeric
        reward's classes (digits 0-9, then ``+ - .``, whitespace, other), ``NONE``-padded."""
        size, width = self.vocabulary.size, self.chars_per_token
        classes = np.full((size, width), NONE, np.int8)
        counts = np.zeros(size, np.int32)
        for token, text in enumerate(self.token_texts):
            if len(text) > width:  # too long to be part of a number: one "other" character
                text = "\x00"
            codes = [int(c) if c in "0123456789" else _CLASSES.get(c, OTHER) for c in text]
            classes[token, : len(codes)] = codes
            counts[token] = len(codes)
        return classes, counts

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TaskSet) and self.digest == other.digest

    def __hash__(self) -> int:
        return hash(self.digest)

    def __repr__(self) -> str:
        return f"TaskSet({self.path!r}, problems={len(self.lines)}, L={self.length})"


def _fail(path: str, line: int, message: str) -> ValueError:
    return ValueError(f"{path}, line {line}: {message}")


def _read_lines(path: str) -> list[tuple[int, str, str, str | None]]:
    """``(line number, prompt, answer, split or None)`` of every non-blank line of the file."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise FileNotFoundError(f"cannot read the task file {path!r}: {err.strerror or err}") from err
    rows = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError as err:
            raise _fail(path, number, f"not UTF-8 text ({err.reason} at byte {err.start})") from err
        if not text:
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as err:
            raise _fail(path, number, f"not JSON ({err.msg} at column {err.colno})") from err
        if not isinstance(row, dict):
            raise _fail(path, number, f"a line must be a JSON object with prompt and answer, got {type(row).__name__}")
        for key in ("prompt", "answer"):
            if key not in row:
                raise _fail(path, number, f'{key!r} is missing (a line needs "prompt" and "answer" strings)')
            if not isinstance(row[key], str):
                raise _fail(path, number, f"{key!r} must be a string, got {json.dumps(row[key])}")
        if not row["answer"]:
            raise _fail(path, number, "'answer' is empty")
        split = row.get("split")
        if split is not None and split not in ("train", "test"):
            raise _fail(path, number, f'\'split\' must be "train" or "test", got {json.dumps(split)}')
        rows.append((number, row["prompt"], row["answer"], split))
    if not rows:
        raise ValueError(f'{path}: no tasks (one JSON object per line with "prompt" and "answer" strings)')
    return rows


def _is_test(prompt: str, fraction: float) -> bool:
    """The hash split of a line without a ``split`` field (module docstring)."""
    return int(hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:8], 16) < fraction * 2**32


def _tokenizer_vocabulary(source: str) -> TokenizerVocabulary:
    """The tokenizer in ``source``: a directory with ``tokenizer.json`` (and ``config.json`` or
    ``tokenizer_config.json`` naming the end token), or a ``tokenizer.json`` file."""
    try:
        import tokenizers  # the hf extra, imported only where a tokenizer is asked for
    except ImportError as err:
        raise ImportError(f"tokenizer= needs the tokenizers library: {install_hint('hf')}") from err
    where = Path(source)
    directory, file = (where, where / "tokenizer.json") if where.is_dir() else (where.parent, where)
    if not file.is_file():
        raise FileNotFoundError(f"tokenizer: {source!r} is neither a tokenizer.json file nor a directory holding one")
    tokenizer = tokenizers.Tokenizer.from_file(str(file))
    end = None
    config = directory / "config.json"
    if config.is_file():
        eos = json.loads(config.read_text()).get("eos_token_id")
        end = eos[0] if isinstance(eos, list) and eos else eos
    if not isinstance(end, int) and (directory / "tokenizer_config.json").is_file():
        name = json.loads((directory / "tokenizer_config.json").read_text()).get("eos_token")
        name = name.get("content") if isinstance(name, dict) else name
        end = tokenizer.token_to_id(name) if isinstance(name, str) else None
    if not isinstance(end, int):
        end = tokenizer.token_to_id("<|endoftext|>")
    if not isinstance(end, int) or not 0 <= end < tokenizer.get_vocab_size(with_added_tokens=True):
        raise ValueError(
            f"tokenizer: {source!r} names no end token (config.json's eos_token_id, tokenizer_config.json's "
            "eos_token, or a <|endoftext|> token)"
        )
    return TokenizerVocabulary(tokenizer, end)


def _encode(vocab: Vocabulary, text: str, path: str, line: int, what: str) -> list[int]:
    try:
        ids = vocab.encode(text)
    except ValueError as err:
        raise _fail(path, line, f"the {what} cannot be encoded: {err}") from err
    if what == "answer" and vocab.bos_id is not None:
        ids = ids[1:]  # the vocabulary starts every text with bos; an answer follows its prompt
    if vocab.end_id in ids:
        raise _fail(path, line, f"the {what} encodes to the end token ({vocab.end_id}), which ends a text")
    return ids


@functools.lru_cache(maxsize=8)
def _read_cached(
    path: str, stamp: tuple, tokenizer: str | None, margin: int | None, length: int | None, fraction: float
):
    del stamp  # in the key only: a changed file is read again
    rows = _read_lines(path)
    if tokenizer is None:
        characters = sorted(set(NUMBER_CHARACTERS).union(*(set(p) | set(a) for _, p, a, _ in rows)))
        vocab = Vocabulary(
            (*characters, END_STRING, BOS_STRING), len(characters), len(characters) + 1, "", len(characters) + 1
        )
        token_texts = (*characters, "", "")
        recipe = json.dumps(vocab.strings)
    else:
        vocab = _tokenizer_vocabulary(tokenizer)
        text_of = vocab.tokenizer.decode
        token_texts = tuple(
            "" if i == vocab.end_id else text_of([i], skip_special_tokens=False) for i in range(vocab.size)
        )
        recipe = vocab.recipe + repr(vocab.end_id)
    prompts, answers = [], []
    for line, prompt, answer, _ in rows:
        ids = _encode(vocab, prompt, path, line, "prompt")
        if not ids:
            raise _fail(path, line, "'prompt' is empty: this tokenizer has no bos token, so a prompt needs text")
        prompts.append(ids)
        answers.append(_encode(vocab, answer, path, line, "answer"))
        if not answers[-1]:
            raise _fail(path, line, f"the answer {answer!r} encodes to no tokens")
    longest_prompt, longest_answer = max(map(len, prompts)), max(map(len, answers))
    if length is None:
        budget = longest_answer + margin
    else:
        budget = length - longest_prompt - 1
        if budget < longest_answer:
            raise ValueError(
                f"length must be >= {longest_prompt + longest_answer + 1} for {path} (its longest prompt, "
                f"{longest_prompt} tokens, its longest answer, {longest_answer}, and the end token), got {length}"
            )
    total = longest_prompt + budget + 1
    end = vocab.end_id
    prompt_array = np.full((len(rows), total), end, np.int32)
    answer_array = np.full((len(rows), budget + 1), end, np.int32)
    for i, (p, a) in enumerate(zip(prompts, answers, strict=True)):
        prompt_array[i, : len(p)] = p
        answer_array[i, : len(a)] = a
    test = np.asarray([split == "test" if split else _is_test(p, fraction) for _, p, _, split in rows])
    if test.all():
        raise ValueError(f"{path}: every task is in the test split; training needs train tasks")
    digest = hashlib.sha256(Path(path).read_bytes() + recipe.encode() + repr((budget, fraction)).encode())
    arrays = [prompt_array, np.asarray(list(map(len, prompts)), np.int32), answer_array, test]
    for array in arrays:
        array.setflags(write=False)
    return TaskSet(
        path,
        digest.hexdigest(),
        vocab,
        longest_prompt,
        budget,
        arrays[0],
        arrays[1],
        arrays[2],
        tuple(a for _, _, a, _ in rows),
        arrays[3],
        tuple(line for line, *_ in rows),
        token_texts,
    )


def read_tasks(
    path: str | os.PathLike = EXAMPLE_PATH,
    tokenizer: str | os.PathLike | None = None,
    margin: int | None = None,
    length: int | None = None,
    test_fraction: float = 0.2,
) -> TaskSet:
    """Read and encode a task file (see the module docstring for the format and the keywords).

    Cached by the absolute path, the file's size and modification time and the other arguments.

    Raises:
        FileNotFoundError: the file (or the tokenizer) cannot be read.
        ValueError: a bad line (its number and what is wrong), both ``margin`` and ``length``, a
            ``length`` too short, or no train tasks.
        TypeError: an argument of the wrong type.
    """
    for name, value in (("path", path), ("tokenizer", tokenizer)):
        if not (isinstance(value, (str, os.PathLike)) or (name == "tokenizer" and value is None)):
            raise TypeError(f"{name} must be a file path (str), got {type(value).__name__} {value!r}")
    if margin is not None and length is not None:
        raise ValueError(f"give margin or length, not both (got margin={margin}, length={length})")
    if length is not None:
        check_int("length", length, 3)
    margin = check_int("margin", 4 if margin is None else margin, 0, 4096) if length is None else None
    fraction = check_float("test_fraction", test_fraction, 0.0, 1.0, high_open=True)
    path = os.path.abspath(path)
    try:
        stat = os.stat(path)
    except OSError as err:
        raise FileNotFoundError(f"cannot read the task file {path!r}: {err.strerror or err}") from err
    source = None if tokenizer is None else os.path.abspath(tokenizer)
    return _read_cached(path, (stat.st_size, stat.st_mtime_ns), source, margin, length, fraction)


@struct.dataclass
class TasksParams:
    """The problems and what resets draw (data, so one compiled program serves both splits).

    ``prompts``, ``prompt_lengths``, ``answers``: ``TaskSet``'s arrays; ``answer_number`` bool
    ``[M]``, ``answer_negative`` bool ``[M]``, ``answer_integer``/``answer_fraction`` int8 ``[M, W]``:
    the reference answers' numeric forms; ``char_classes`` int8 ``[V, K]`` and ``char_counts`` int32
    ``[V]``: the numeric table; ``split_indices`` int32 ``[2, M]``: the train, then the test split's
    problem indices (padded), ``split_counts`` int32 ``[2]``."""

    prompts: jax.Array
    prompt_lengths: jax.Array
    answers: jax.Array
    answer_number: jax.Array
    answer_negative: jax.Array
    answer_integer: jax.Array
    answer_fraction: jax.Array
    char_classes: jax.Array
    char_counts: jax.Array
    split_indices: jax.Array
    split_counts: jax.Array
    test_split: jax.Array  # bool: resets draw test problems
    format_reward: jax.Array  # float32
    max_steps_in_episode: jax.Array  # int32


@struct.dataclass
class TasksState(TokenState):
    """``TokenState`` plus ``problem``: int32, the index of the problem (the file's ``M`` tasks)."""

    problem: jax.Array


def _number_in_jax(chars: jax.Array, count: jax.Array) -> tuple[jax.Array, ...]:
    """The numeric form (``number_form``) of the first ``count`` character classes of ``chars``
    ``[W]``: ``(is a number, negative, integer digits [W], fraction digits [W])``."""
    width = chars.shape[0]
    index = jnp.arange(width)
    inside = index < count
    solid = inside & (chars != SPACE)
    start = jnp.argmax(solid)  # first character that is not whitespace
    stop = width - jnp.argmax(solid[::-1])  # one past the last
    signed = (chars[start] == PLUS) | (chars[start] == MINUS)
    body = (index >= start + signed) & (index < stop)
    digit, dot = chars < 10, chars == DOT
    dots = body & dot
    is_number = jnp.all(jnp.where(body, digit | dot, True)) & (jnp.sum(dots) <= 1) & jnp.any(body & digit)
    point = jnp.where(jnp.any(dots), jnp.argmax(dots), stop)
    integer = jnp.zeros(width, jnp.int8).at[jnp.where(body & (index < point), width - point + index, width)]
    integer = integer.set(chars, mode="drop")
    fraction = jnp.zeros(width, jnp.int8).at[jnp.where(body & (index > point), index - point - 1, width)]
    fraction = fraction.set(chars, mode="drop")
    negative = (chars[start] == MINUS) & (jnp.any(integer != 0) | jnp.any(fraction != 0))
    return is_number, negative, integer, fraction


@functools.partial(jax.jit, static_argnums=(0, 1))
def _compiled(method: Any, env: Tasks, *args: Any) -> Any:
    """``method(env, *args)`` as one compiled call (eagerly, op by op, a reset and a step would be
    hundreds of dispatches); inside another ``jit`` or ``vmap`` it is inlined."""
    return method(env, *args)


@dataclasses.dataclass(frozen=True)
class Tasks(TokenEnv):
    """The tasks of a JSONL file, answered token by token (see the module docstring).

    Args:
        tasks: the encoded file (``read_tasks``).
        reward: ``"exact"`` or ``"numeric"``.
    """

    tasks: TaskSet = dataclasses.field(default_factory=read_tasks)
    reward: str = "exact"

    def __post_init__(self) -> None:
        if not isinstance(self.tasks, TaskSet):
            raise TypeError(f"tasks must be a TaskSet (jrl.envs.tasks.read_tasks), got {type(self.tasks).__name__}")
        check_choice("reward", self.reward, ("exact", "numeric"))
        if self.reward == "numeric":
            width = self.tasks.number_width
            for line, answer in zip(self.tasks.lines, self.tasks.answer_texts, strict=True):
                if not number_form(answer, width)[0]:
                    raise _fail(self.tasks.path, line, f"reward='numeric' needs a number as the answer, got {answer!r}")

    @property
    def vocabulary(self) -> Vocabulary:
        return self.tasks.vocabulary

    @property
    def length(self) -> int:  # type: ignore[override]  # a property here: it depends on the file
        """The buffer's ``L = P + A + 1``."""
        return self.tasks.length

    @property
    def default_params(self) -> TasksParams:
        tasks, width = self.tasks, self.tasks.number_width
        forms = [number_form(answer, width) for answer in tasks.answer_texts]
        classes, counts = tasks.char_table()
        indices = np.zeros((2, len(tasks.lines)), np.int32)
        for split in (0, 1):
            chosen = np.flatnonzero(tasks.test == bool(split))
            indices[split, : chosen.size] = chosen
        return TasksParams(
            prompts=jnp.asarray(tasks.prompts),
            prompt_lengths=jnp.asarray(tasks.prompt_lengths),
            answers=jnp.asarray(tasks.answers),
            answer_number=jnp.asarray([f[0] for f in forms]),
            answer_negative=jnp.asarray([f[1] for f in forms]),
            answer_integer=jnp.asarray(np.stack([f[2] for f in forms])),
            answer_fraction=jnp.asarray(np.stack([f[3] for f in forms])),
            char_classes=jnp.asarray(classes),
            char_counts=jnp.asarray(counts),
            split_indices=jnp.asarray(indices),
            split_counts=jnp.asarray([np.sum(~tasks.test), np.sum(tasks.test)], jnp.int32),
            test_split=jnp.bool_(False),
            format_reward=jnp.float32(0.0),
            max_steps_in_episode=jnp.int32(2**31 - 1),
        )

    def _draw(self, key: jax.Array, params: TasksParams, test: jax.Array) -> jax.Array:
        """A problem index, uniform over the split ``test`` names (int32)."""
        split = test.astype(jnp.int32)
        return params.split_indices[split, jax.random.randint(key, (), 0, params.split_counts[split])]

    def reset_env(self, key: jax.Array, params: TasksParams) -> tuple[jax.Array, TasksState]:
        return _compiled(type(self)._reset, self, key, params)

    def _reset(self, key: jax.Array, params: TasksParams) -> tuple[jax.Array, TasksState]:
        problem = self._draw(key, params, params.test_split)
        count = params.prompt_lengths[problem]
        state = TasksState(
            tokens=params.prompts[problem], position=count, prompt_length=count, time=jnp.int32(0), problem=problem
        )
        return state.tokens, state

    def step_env(self, key: jax.Array, state: TasksState, action: jax.Array, params: TasksParams):
        return _compiled(type(self)._step, self, key, state, action, params)

    def score(self, written: jax.Array, params: TasksParams, problem: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(correct, well_formed)`` (bool) of an answer ``written`` int32 ``[A + 1]`` (the ids from
        the prompt on, end-padded) to ``problem``, by the environment's reward (module docstring)."""
        end = self.vocabulary.end_id
        size = jnp.argmax(jnp.concatenate([written == end, jnp.ones(1, bool)]))  # tokens before the end
        if self.reward == "exact":
            return jnp.all(written == params.answers[problem]), size > 0
        ids = written[:-1]  # the last slot can only hold the end token
        counts = jnp.where(jnp.arange(ids.shape[0]) < size, params.char_counts[ids], 0)
        offsets = jnp.cumsum(counts) - counts
        width = self.tasks.number_width
        per_token = self.tasks.chars_per_token
        slot = jnp.arange(per_token)
        where = jnp.where(slot[None, :] < counts[:, None], offsets[:, None] + slot[None, :], width)
        chars = (
            jnp.full(width, NONE, jnp.int8).at[where.reshape(-1)].set(params.char_classes[ids].reshape(-1), mode="drop")
        )
        is_number, negative, integer, fraction = _number_in_jax(chars, jnp.sum(counts))
        correct = (
            is_number
            & params.answer_number[problem]
            & (negative == params.answer_negative[problem])
            & jnp.all(integer == params.answer_integer[problem])
            & jnp.all(fraction == params.answer_fraction[problem])
        )
        return correct, is_number

    def _step(self, key: jax.Array, state: TasksState, action: jax.Array, params: TasksParams) -> tuple:
        del key
        action = jnp.asarray(action, jnp.int32)
        tokens, position = write(state, action, self.length)
        ended = action == self.vocabulary.end_id
        budget = self.tasks.answer_tokens + 1
        written = jnp.take(
            tokens, state.prompt_length + jnp.arange(budget), mode="fill", fill_value=self.vocabulary.end_id
        )
        correct, well_formed = self.score(written, params, state.problem)
        reward = jnp.where(ended, jnp.where(correct, 1.0, jnp.where(well_formed, params.format_reward, 0.0)), 0.0)
        new = state.replace(tokens=tokens, position=position, time=state.time + 1)
        terminated = ended | (new.time >= budget)
        truncated = new.time >= params.max_steps_in_episode  # Gymnasium's TimeLimit: also on a terminating step
        return new.tokens, new, reward.astype(jnp.float32), terminated, truncated, {}

    def pretraining_batch(
        self, key: jax.Array, params: TasksParams, batch_size: int, noise: float = 0.1
    ) -> tuple[jax.Array, jax.Array]:
        """Train-split problems with their reference answers, a fraction ``noise`` of them with another
        train problem's answer: ``(tokens int32 [B, L], mask bool [B, L])``, the mask on the answer
        and its end token."""
        k_problem, k_wrong, k_other = jax.random.split(key, 3)
        train = jnp.bool_(False)
        problems = jax.vmap(lambda k: self._draw(k, params, train))(jax.random.split(k_problem, batch_size))
        others = jax.vmap(lambda k: self._draw(k, params, train))(jax.random.split(k_other, batch_size))
        wrong = jax.random.uniform(k_wrong, (batch_size,)) < noise
        budget = self.tasks.answer_tokens + 1
        end = self.vocabulary.end_id

        def example(problem: jax.Array, answer_of: jax.Array) -> tuple[jax.Array, jax.Array]:
            start = params.prompt_lengths[problem]
            answer = params.answers[answer_of]
            where = start + jnp.arange(budget)
            tokens = params.prompts[problem].at[where].set(answer, mode="drop")
            size = jnp.argmax(answer == end) + 1  # the answer and its end token
            index = jnp.arange(self.length)
            return tokens, (index >= start) & (index < start + size)

        return jax.vmap(example)(problems, jnp.where(wrong, others, problems))

    def answer_text(self, ids: Any) -> str:
        """The text of answer ids (host side), as the numeric reward reads it: the tokens' texts
        joined, a token of more than 16 characters as an unprintable one."""
        texts = self.tasks.token_texts
        per_token = self.tasks.chars_per_token
        return "".join(texts[i] if len(texts[i]) <= per_token else "\x00" for i in ids)

    def text_scores(self, params: TasksParams, tokens: np.ndarray, returns: np.ndarray) -> dict[str, Any]:
        """``accuracy``: the fraction of buffers whose answer is right by the environment's reward;
        ``well_formed``: the fraction whose answer is well formed. Recomputed in Python from the ids:
        each buffer's prompt is the longest of the file's prompts it starts with (a buffer matching
        none counts as wrong and not well formed)."""
        del params, returns
        tasks, end = self.tasks, self.vocabulary.end_id
        known: dict[tuple, list[int]] = {}
        for i, size in enumerate(tasks.prompt_lengths.tolist()):
            known.setdefault(tuple(tasks.prompts[i, :size].tolist()), []).append(i)
        sizes = sorted({len(k) for k in known}, reverse=True)
        right = formed = 0
        rows = np.asarray(tokens).tolist()
        for row in rows:
            prompt = next((tuple(row[:s]) for s in sizes if tuple(row[:s]) in known), None)
            if prompt is None:
                continue
            rest = row[len(prompt) :]
            if end not in rest:  # the budget spent without an end token
                continue
            answer = rest[: rest.index(end)]
            problems = known[prompt]
            if self.reward == "exact":
                padded = answer + [end] * (tasks.answer_tokens + 1 - len(answer))
                right += any(padded == tasks.answers[i].tolist() for i in problems)
                formed += len(answer) > 0
            else:
                width = tasks.number_width
                mine = number_form(self.answer_text(answer), width)
                formed += mine[0]
                right += mine[0] and any(
                    _same_number(mine, number_form(tasks.answer_texts[i], width)) for i in problems
                )
        return {"accuracy": right / max(len(rows), 1), "well_formed": formed / max(len(rows), 1)}


def _same_number(a: tuple, b: tuple) -> bool:
    return a[0] and b[0] and a[1] == b[1] and np.array_equal(a[2], b[2]) and np.array_equal(a[3], b[3])


def tasks_factory(
    env_id: str,
    max_steps_in_episode: int | None,
    path: str = EXAMPLE_PATH,
    tokenizer: str | None = None,
    reward: str = "exact",
    format_reward: float = 0.0,
    split: str = "train",
    test_fraction: float = 0.2,
    margin: int | None = None,
    length: int | None = None,
) -> tuple[Tasks, TasksParams]:
    """Registry factory: the keywords of the module docstring."""
    del env_id
    env = Tasks(read_tasks(path, tokenizer, margin, length, test_fraction), reward)
    check_choice("split", split, ("train", "test"))
    params = env.default_params
    if split == "test" and int(params.split_counts[1]) == 0:
        raise ValueError(f"split='test': {env.tasks.path} has no test tasks (test_fraction={test_fraction})")
    params = params.replace(
        test_split=jnp.bool_(split == "test"),
        format_reward=jnp.float32(check_float("format_reward", format_reward, 0.0, 1.0, high_open=True)),
    )
    if max_steps_in_episode is not None:
        params = params.replace(max_steps_in_episode=jnp.int32(max_steps_in_episode))
    return env, params
