"""``Tasks-v0`` (issue 26, item 2): a user's JSONL file of prompt/answer pairs as a token environment.

Every expected reward is computed here in plain Python from the decoded text (``==`` on strings, a
regular expression and ``decimal.Decimal`` for numbers), never from the environment's tables; the
environment's rewards come from one compiled, vmapped ``step_env`` per environment. A tokenizer
made here with ``tokenizers`` checks the same against its own decoding; a few GRPO iterations run
on the file end to end.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from decimal import Decimal
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jrl
from jrl import cli
from jrl.envs import vocabulary
from jrl.envs.registry import resolve_env_paths
from jrl.envs.tasks import TasksState
from jrl.experiment import RunSpec
from jrl.export import TextExport, export_text
from jrl.text import (
    LanguageModel,
    LMConfig,
    ModelFileError,
    PretrainConfig,
    generate,
    grpo,
    init_model,
    load_model,
    model_vocabulary,
    pretrain,
    save_model,
)
from jrl.text.hf import HFTokenizer
from jrl.text.pretrain import check_model_fits, load_pretrained

TASKS = [
    {"prompt": "7*6=", "answer": "42"},
    {"prompt": "half of 5: ", "answer": "2.5"},
    {"prompt": "3-10=", "answer": "-7"},
    {"prompt": "zero? ", "answer": "0"},
    {"prompt": "1/4 as a decimal: ", "answer": "0.25", "split": "test"},
    {"prompt": "100-1=", "answer": "99", "split": "train"},
    {"prompt": "a dozen: ", "answer": "12"},
    {"prompt": "-3+1=", "answer": "-2"},
]
COUNT = 600  # random completions per environment
NUMBER = re.compile(r"[ \t\n\r]*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)[ \t\n\r]*")
# Completions that probe the numeric rule: every spelling of a value, and near misses.
SPELLINGS = [
    "{a}",
    " {a}",
    "{a} ",
    "+{a}",
    "0{a}",
    "00{a}",
    "{a}.",
    "{a}.0",
    "{a}00",
    "-{a}",
    "{a}.5",
    "{a}z",
    "0" * 20 + "{a}",
]
ODD = [
    "",
    "-",
    "+",
    ".",
    "-0",
    "+0",
    "0.",
    ".0",
    "-.5",
    ".25",
    "0.250",
    "1 2",
    "--7",
    "1e2",
    "7-",
    " ",
    "4 2",
    "2.5.",
    "-07",
]


def write_tasks(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


@pytest.fixture(scope="module")
def task_file(tmp_path_factory):
    return write_tasks(tmp_path_factory.mktemp("tasks") / "tasks.jsonl", TASKS)


def python_number(text):
    return Decimal(text.strip()) if NUMBER.fullmatch(text) else None


def python_reward(kind, text, answer, format_reward):
    """The module docstring's rewards, on the decoded answer text."""
    if kind == "exact":
        return 1.0 if text == answer else format_reward if text else 0.0
    mine = python_number(text)
    return 1.0 if mine is not None and mine == Decimal(answer) else format_reward if mine is not None else 0.0


@functools.cache
def stepper(env):
    """Jitted and vmapped: the reward, terminated and truncated of ``step_env`` from each state with each action."""
    return jax.jit(jax.vmap(env.step_env, in_axes=(None, 0, 0, None)))


def states_with(env, params, problems, answers):
    """States of ``problems`` whose answer so far is ``answers`` (id lists), stacked."""
    tokens = np.asarray(params.prompts)[problems].copy()
    lengths = np.asarray(params.prompt_lengths)[problems]
    for row, (start, ids) in enumerate(zip(lengths, answers, strict=True)):
        tokens[row, start : start + len(ids)] = ids
    sizes = np.asarray([len(ids) for ids in answers], np.int32)
    return TasksState(
        tokens=jnp.asarray(tokens),
        position=jnp.asarray(lengths + sizes),
        prompt_length=jnp.asarray(lengths),
        time=jnp.asarray(sizes),
        problem=jnp.asarray(problems, jnp.int32),
    )


def completions(answers, rng):
    """A text to write after each prompt: a spelling of its answer (or another's), an odd string,
    or random number characters."""
    texts = []
    for answer in answers:
        if rng.uniform() < 0.2:
            answer = TASKS[rng.integers(len(TASKS))]["answer"]
        kind = rng.integers(4)
        if kind == 3:
            texts.append(answer)
        elif kind == 0:
            texts.append(SPELLINGS[rng.integers(len(SPELLINGS))].format(a=answer))
        elif kind == 1:
            texts.append(ODD[rng.integers(len(ODD))])
        else:
            texts.append("".join(rng.choice(list("0123456789.-+ "), rng.integers(1, 5))))
    return texts


def check_rewards(env, params, encode, decode, count, seed):
    """``count`` random (problem, completion) pairs: the end token's reward against ``python_reward``
    of the decoded answer (a token whose text is longer than 16 characters is never part of a
    number); returns how many were right and well formed (so a test sees both kinds)."""
    rng = np.random.default_rng(seed)
    answers = env.tasks.answer_texts
    problems = rng.integers(len(answers), size=count)
    texts = completions([answers[p] for p in problems], rng)
    budget = env.tasks.answer_tokens
    ids = [encode(text)[:budget] for text in texts]
    states = states_with(env, params, problems, ids)
    end = np.full(count, env.vocabulary.end_id, np.int32)
    _, after, reward, terminated, truncated, _ = stepper(env)(jax.random.key(0), states, end, params)
    fmt = float(params.format_reward)
    long = [any(len(decode([t])) > 16 for t in i) for i in ids]
    expected = [
        python_reward(env.reward, "\x00" if too_long and env.reward == "numeric" else decode(i), answers[p], fmt)
        for i, p, too_long in zip(ids, problems, long, strict=True)
    ]
    np.testing.assert_array_equal(np.asarray(reward), np.asarray(expected, np.float32), err_msg=str(texts))
    assert np.asarray(terminated).all() and not np.asarray(truncated).any()
    # The buffer the step left is the prompt, the answer and the end token.
    for row, (p, i) in enumerate(zip(problems, ids, strict=True)):
        text = env.vocabulary.decode(np.asarray(after.tokens[row]))
        assert text == prompt_text(env, p) + decode(i)
    return sum(r == 1.0 for r in expected), sum(r == fmt for r in expected), sum(long)


def prompt_text(env, problem):
    return env.vocabulary.decode(np.asarray(env.tasks.prompts[problem]))


@pytest.mark.parametrize("kind", ["exact", "numeric"])
def test_rewards_match_python_on_random_completions(task_file, kind):
    env, params = jrl.make("Tasks-v0", path=task_file, reward=kind, format_reward=0.25)
    vocab = env.vocabulary
    assert all(c in vocab.strings for c in "0123456789+-. ") and vocab.strings[-2:] == ("<end>", "<bos>")
    # L = P + A + 1: the longest prompt with bos (19), the longest answer (4) plus the margin (4), the end token.
    assert (env.tasks.prompt_tokens, env.tasks.answer_tokens, env.length) == (19, 8, 28)
    right, formed, _ = check_rewards(env, params, lambda t: vocab.encode(t)[1:], vocab.decode, COUNT, 0)
    assert right > 30 and formed > 30, (right, formed)


def test_steps_before_the_end_and_the_budget(task_file):
    """No reward before the end token; the budget (A + 1 tokens) spent without one ends the episode
    with reward 0; a vmapped reset/step over environments equals each one alone."""
    env, params = jrl.make("Tasks-v0", path=task_file, reward="numeric", format_reward=0.5)
    vocab = env.vocabulary
    digit = vocab.encode("4")[1]
    budget = env.tasks.answer_tokens
    # As many rows as the reward test's, so its compiled step serves: n digits written, n = 0 .. A.
    written = np.arange(COUNT) % (budget + 1)
    states = states_with(env, params, np.arange(COUNT) % len(TASKS), [[digit] * n for n in written])
    action = np.full(COUNT, digit, np.int32)
    _, _, reward, terminated, _, _ = stepper(env)(jax.random.key(0), states, action, params)
    np.testing.assert_array_equal(np.asarray(terminated), written == budget)
    assert not np.asarray(reward).any()
    # Resets vmapped over keys: each the reset of its key alone, its prompt the drawn problem's.
    keys = jax.random.split(jax.random.key(9), 6)
    obs_v, states_v = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(keys, params)
    for i in range(6):
        obs, state = env.reset(keys[i], params)
        np.testing.assert_array_equal(obs_v[i], obs)
        assert int(states_v.problem[i]) == int(state.problem)
        assert vocab.decode(np.asarray(obs)) == prompt_text(env, int(state.problem))


def test_splits_are_disjoint_deterministic_and_drawn(task_file):
    env, _ = jrl.make("Tasks-v0", path=task_file, test_fraction=0.5)
    expected = [
        row["split"] == "test"
        if "split" in row
        else int(hashlib.sha256(row["prompt"].encode()).hexdigest()[:8], 16) < 2**31
        for row in TASKS
    ]
    np.testing.assert_array_equal(env.tasks.test, expected)
    assert 0 < sum(expected) < len(TASKS)
    resets = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))
    keys = jax.random.split(jax.random.key(1), 400)
    drawn = {}
    for split in ("train", "test"):
        _, split_params = jrl.make("Tasks-v0", path=task_file, test_fraction=0.5, split=split)
        _, states = resets(keys, split_params)
        drawn[split] = set(np.asarray(states.problem).tolist())
        assert drawn[split] == {i for i, t in enumerate(expected) if t == (split == "test")}  # all, and only, its own
    assert not drawn["train"] & drawn["test"]
    again, _ = jrl.make("Tasks-v0", path=task_file, test_fraction=0.5)
    np.testing.assert_array_equal(again.tasks.test, env.tasks.test)


def test_pretraining_batch_and_text_scores(task_file):
    env, params = jrl.make("Tasks-v0", path=task_file, reward="numeric")
    tokens, mask = jax.jit(env.pretraining_batch, static_argnums=2)(jax.random.key(0), params, 64, 0.0)
    texts = env.vocabulary.decode_batch(np.asarray(tokens))
    train = {row["prompt"] + row["answer"] for row, test in zip(TASKS, env.tasks.test, strict=True) if not test}
    assert set(texts) <= train and len(set(texts)) > 3
    for text, row, m in zip(texts, np.asarray(tokens), np.asarray(mask), strict=True):
        answer = next(r["answer"] for r in TASKS if r["prompt"] + r["answer"] == text)
        assert row[m].tolist() == [env.vocabulary.strings.index(c) for c in answer] + [env.vocabulary.end_id]
    assert env.text_scores(params, np.asarray(tokens), None) == {"accuracy": 1.0, "well_formed": 1.0}
    noisy, _ = jax.jit(env.pretraining_batch, static_argnums=2)(jax.random.key(0), params, 64, 0.5)
    scores = env.text_scores(params, np.asarray(noisy), None)
    assert 0.3 < scores["accuracy"] < 0.9 and scores["well_formed"] == 1.0


@pytest.mark.parametrize(
    "content, match",
    [
        ('{"prompt": "a", "answer": "1"}\nnot json\n', r"line 2: not JSON"),
        ('{"prompt": "a", "answer": "1"}\n\n["a", "1"]\n', r"line 3: a line must be a JSON object"),
        ('{"prompt": "a"}\n', r"line 1: 'answer' is missing"),
        ('{"answer": "1"}\n', r"line 1: 'prompt' is missing"),
        ('{"prompt": "a", "answer": 1}\n', r"line 1: 'answer' must be a string, got 1"),
        ('{"prompt": "a", "answer": ""}\n', r"line 1: 'answer' is empty"),
        ('{"prompt": "a", "answer": "1", "split": "dev"}\n', r"line 1: 'split' must be"),
        ('{"prompt": "a", "answer": "1", "split": "test"}\n', r"every task is in the test split"),
        ("\n\n", r"no tasks"),
    ],
)
def test_bad_files_are_refused_with_the_line(tmp_path, content, match):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(ValueError, match=match):
        jrl.make("Tasks-v0", path=str(path))


def test_bad_keywords_are_refused(tmp_path, task_file):
    with pytest.raises(FileNotFoundError, match="cannot read the task file"):
        jrl.make("Tasks-v0", path=str(tmp_path / "missing.jsonl"))
    with pytest.raises(ValueError, match=r"line 2: reward='numeric' needs a number as the answer, got 'x'"):
        jrl.make(
            "Tasks-v0",
            path=write_tasks(tmp_path / "t.jsonl", [TASKS[0], {"prompt": "b", "answer": "x"}]),
            reward="numeric",
        )
    with pytest.raises(ValueError, match=r"length must be >= 24"):
        jrl.make("Tasks-v0", path=task_file, length=23)
    assert jrl.make("Tasks-v0", path=task_file, length=24)[0].tasks.answer_tokens == 4
    with pytest.raises(ValueError, match="give margin or length, not both"):
        jrl.make("Tasks-v0", path=task_file, margin=1, length=30)
    with pytest.raises(ValueError, match="reward must be one of"):
        jrl.make("Tasks-v0", path=task_file, reward="fuzzy")
    with pytest.raises(ValueError, match="has no test tasks"):
        jrl.make("Tasks-v0", path=task_file, test_fraction=0.0, split="test") if False else jrl.make(
            "Tasks-v0", path=write_tasks(tmp_path / "u.jsonl", TASKS[:4]), test_fraction=0.0, split="test"
        )


def test_a_tokenizer_gives_the_rewards_of_its_own_decoding(tmp_path, task_file):
    """A byte-level BPE made here: its ids through the environment, its ``decode`` in Python."""
    tokenizers = pytest.importorskip("tokenizers")
    bpe = tokenizers.ByteLevelBPETokenizer()
    # Runs of zeros merge into tokens longer than 16 characters, which are never part of a number.
    corpus = [row["prompt"] + row["answer"] for row in TASKS] + ["0.5 +12 -07 1.25 100 00 . .. 3 4", "0" * 20] * 3
    bpe.train_from_iterator(
        corpus, vocab_size=300, min_frequency=1, special_tokens=["<|endoftext|>"], show_progress=False
    )
    bpe.save(str(tmp_path / "tokenizer.json"))
    for kind in ("exact", "numeric"):
        env, params = jrl.make("Tasks-v0", path=task_file, tokenizer=str(tmp_path), reward=kind, format_reward=0.5)
        vocab = env.vocabulary
        assert vocab.size == bpe.get_vocab_size() and vocab.end_id == bpe.token_to_id("<|endoftext|>")
        assert vocab.bos_id is None and env.tasks.prompt_tokens == max(len(bpe.encode(r["prompt"]).ids) for r in TASKS)
        right, formed, long = check_rewards(env, params, lambda t: bpe.encode(t).ids, bpe.decode, 400, 1)
        assert right > 20 and formed > 20 and long > 3, (right, formed, long)


TINY = {"d_model": 16, "num_layers": 1, "num_heads": 2, "mlp_ratio": 2}


def test_grpo_runs_on_a_task_file(task_file):
    env, params = jrl.make("Tasks-v0", path=task_file, reward="numeric", format_reward=0.5)
    vocab = env.vocabulary
    # The file's characters are not the bundled example's: the model carries them (LMConfig.vocabulary).
    config = LMConfig("Tasks-v0", vocab.size, vocab.num_actions, env.length, **TINY, vocabulary=vocab)
    shapes = jax.eval_shape(lambda: init_model(config, jax.random.key(0)).params)
    rng = np.random.default_rng(0)
    weights = jax.tree_util.tree_map(lambda leaf: rng.normal(0.0, 0.2, leaf.shape).astype(leaf.dtype), shapes)
    settings = grpo.GRPOConfig(num_prompts=4, group_size=4, num_steps=2, log_interval=1, learning_rate=1e-2)
    result = jax.jit(grpo.make_train(settings, env, params, model=LanguageModel(config, weights)))(jax.random.key(0))
    assert np.asarray(result.metrics["finite"]).all() and np.asarray(result.metrics["kl"])[-1] >= 0.0
    returns = np.asarray(result.metrics["episode_return"])
    assert returns.shape == (2,) and ((returns >= 0.0) & (returns <= 1.0)).all()


def test_a_run_records_the_file_by_its_absolute_path(tmp_path, monkeypatch):
    """``path`` and ``tokenizer`` (``EnvSpec.path_keywords``) typed relative to the working directory
    are recorded absolute, so ``jrl resume`` and ``jrl eval`` find them from anywhere; other keywords,
    and other ids' keywords, are left as typed."""
    monkeypatch.chdir(tmp_path)
    write_tasks(tmp_path / "mine.jsonl", TASKS)
    spec = RunSpec.resolve("grpo", "Tasks-v0", env_kwargs={"path": "mine.jsonl", "reward": "numeric"})
    resolved = spec.resolve_paths(tmp_path)
    assert resolved.env_kwargs == {"path": str(tmp_path / "mine.jsonl"), "reward": "numeric"}
    assert spec.env_kwargs["path"] == "mine.jsonl" and resolved.resolve_paths("/elsewhere") == resolved
    assert resolve_env_paths("Tasks-v0", {"tokenizer": "hf/gpt2", "margin": 2}, "/base") == {
        "tokenizer": "/base/hf/gpt2",
        "margin": 2,
    }
    assert resolve_env_paths("FrozenLake-v1", {"map_name": "4x4"}, "/base") == {"map_name": "4x4"}


# --- a model knows its own vocabulary ------------------------------------------------------------
TINY_PRETRAIN = PretrainConfig(num_steps=2, batch_size=4, **TINY)
TINY_FLAGS = [
    a for name, value in {"num_steps": 2, "batch_size": 4, **TINY}.items() for a in ("--set", f"{name}={value}")
]


@pytest.fixture(scope="module")
def own_model(tmp_path_factory, task_file):
    """``jrl pretrain`` on the test file (characters the bundled example lacks: ``*``, ``=``, ``?``),
    run from the file's folder with a relative ``path``: ``(model directory, environment, params)``."""
    folder = tmp_path_factory.mktemp("own")
    write_tasks(folder / "mine.jsonl", TASKS)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        argv = [
            "pretrain",
            "--env",
            "Tasks-v0",
            "--env-kwarg",
            "path=mine.jsonl",
            *TINY_FLAGS,
            "--out",
            "lm",
            "--quiet",
        ]
        assert cli.main(argv) == 0
    env, params = jrl.make("Tasks-v0", path=task_file)
    return folder / "lm", env, params


def test_a_model_pretrained_on_a_file_reads_and_writes_its_characters(own_model, tmp_path, capsys):
    """The bug: such a model decoded with the bundled example's characters. Now ``generate``,
    ``load_model`` and ``export_text`` all read the file's own, and ``jrl pretrain`` records the path
    absolute."""
    directory, env, params = own_model
    mine, bundled = env.vocabulary, vocabulary("Tasks-v0")
    assert "*" in mine.strings and "*" not in bundled.strings and mine != bundled
    document = json.loads((directory / "config.json").read_text())
    assert document["config"]["vocabulary"]["strings"] == list(mine.strings)
    assert document["training"]["env_kwargs"] == {"path": str(directory.parent / "mine.jsonl")}
    model = load_model(directory)
    assert model.config.vocabulary == mine and model_vocabulary(model) == mine
    prompt = "7*6="
    out = generate(model, [prompt, "zero? "], jax.random.key(0), max_new_tokens=3, do_sample=False)
    np.testing.assert_array_equal(out.tokens[0, : len(prompt) + 1], mine.encode(prompt))  # bos, then the characters
    assert out.texts == mine.decode_batch(out.tokens) and out.texts[0].startswith(prompt)
    # The same model pretrained in this process, saved and exported: the same tokens every way.
    again, _ = pretrain(jax.random.key(0), env, params, TINY_PRETRAIN)
    assert again.config == model.config
    export = export_text(model)
    assert export.spec["vocabulary"]["strings"] == list(mine.strings)
    for decoded in (export.models()[0], TextExport.load(export.save(tmp_path / "lm.npz")).models()[0]):
        assert decoded.config == model.config
        rerun = generate(decoded, [prompt, "zero? "], jax.random.key(0), max_new_tokens=3, do_sample=False)
        np.testing.assert_array_equal(rerun.tokens, out.tokens)
    # The command line too, with the same rows, so its decoding reuses the compiled program.
    argv = ["generate", str(directory), "--greedy", "--max-new-tokens", "3", "--prompt", prompt, "--prompt", "zero? "]
    assert cli.main(argv) == 0
    assert capsys.readouterr().out.split("\n")[:2] == [text.replace("\n", "\\n") for text in out.texts]


def test_a_model_of_another_file_s_characters_is_refused(own_model, tmp_path):
    """Another file with as many characters (``?`` traded for ``!``) and the same buffer: every shape
    fits, the characters do not."""
    directory, env, params = own_model
    other_rows = [dict(row, prompt=row["prompt"].replace("?", "!")) for row in TASKS]
    other, other_params = jrl.make("Tasks-v0", path=write_tasks(tmp_path / "other.jsonl", other_rows))
    assert (other.vocabulary.size, other.length) == (env.vocabulary.size, env.length)
    model = load_model(directory)
    check_model_fits(model, env, params, "the model")
    assert load_pretrained(str(directory), env, params).config == model.config
    with pytest.raises(
        ValueError, match=r"other tokens than Tasks-v0's .*only the model has: \['\?'\]; only the environment: \['!'\]"
    ):
        check_model_fits(model, other, other_params, "the model")
    with pytest.raises(ValueError, match=r"pretrained: the model in .* other tokens"):
        load_pretrained(str(directory), other, other_params)
    # A model without its own vocabulary is the id's: the bundled example's characters, not this file's.
    bare = LanguageModel(model.config.replace(vocabulary=None), model.params)
    assert model_vocabulary(bare) == vocabulary("Tasks-v0")
    with pytest.raises(ValueError, match="other tokens"):
        check_model_fits(bare, env, params, "the model")


@pytest.mark.parametrize("environment", ["GraphWalkText-v0", "WordGen-v0"])
def test_a_model_file_from_before_the_vocabulary_field_loads_and_writes_the_same_bytes(tmp_path, environment):
    committed = Path(__file__).parent.parent / "experiments/text_q_learning/results" / environment / "seed-0/pretrained"
    model = load_model(committed)
    assert model.config.vocabulary is None and model_vocabulary(model) == vocabulary(environment)
    training = json.loads((committed / "config.json").read_text())["training"]
    save_model(tmp_path, model, training)
    for name in ("config.json", "model.safetensors"):
        assert (tmp_path / name).read_bytes() == (committed / name).read_bytes(), name


def test_a_hugging_face_model_is_read_at_the_environment_s_buffer_length(tmp_path, task_file):
    """``load_pretrained`` keeps the first ``L`` of a Hugging Face directory's positions (no
    ``length=`` needed), and refuses a buffer longer than them with the field named."""
    tokenizers = pytest.importorskip("tokenizers")
    bpe = tokenizers.ByteLevelBPETokenizer()
    corpus = [row["prompt"] + row["answer"] for row in TASKS]
    bpe.train_from_iterator(
        corpus, vocab_size=280, min_frequency=1, special_tokens=["<|endoftext|>"], show_progress=False
    )
    size, positions = bpe.get_vocab_size(), 24
    config = LMConfig("gpt2", size, size, positions, **TINY, layer_norm_epsilon=1e-5, tied_head=True)
    tokenizer = HFTokenizer(bpe._tokenizer, bpe.token_to_id("<|endoftext|>"))
    shapes = jax.eval_shape(lambda: init_model(config, jax.random.key(0)).params)  # no eager init: seconds
    rng = np.random.default_rng(0)
    weights = jax.tree_util.tree_map(lambda leaf: rng.normal(0.0, 0.2, leaf.shape).astype(leaf.dtype), shapes)
    model = LanguageModel(config, weights, tokenizer)
    save_model(tmp_path, model, format="hf")
    env, params = jrl.make("Tasks-v0", path=task_file, tokenizer=str(tmp_path))
    assert env.length < positions
    tuned = load_pretrained(str(tmp_path), env, params)
    assert tuned.config.context_length == env.length and tuned.tokenizer == tokenizer
    np.testing.assert_array_equal(
        tuned.params["params"]["position_embedding"], model.params["params"]["position_embedding"][: env.length]
    )
    # A jrl model's files cannot hold a tokenizer: pretraining on its vocabulary is refused before anything runs.
    with pytest.raises(ValueError, match=r"vocabulary is a tokenizer's .*pretrained=DIR"):
        pretrain(jax.random.key(0), env, params, TINY_PRETRAIN)
    longer, longer_params = jrl.make("Tasks-v0", path=task_file, tokenizer=str(tmp_path), length=positions + 1)
    with pytest.raises(ValueError, match=rf"pretrained: .*buffer of {positions + 1} tokens .*n_positions={positions}"):
        load_pretrained(str(tmp_path), longer, longer_params)


def test_a_carried_vocabulary_is_validated_and_read_back(own_model, tmp_path):
    directory, env, _ = own_model
    config = load_model(directory).config
    assert (
        LMConfig.from_dict(config.to_dict()) == config
        and config.to_dict()["vocabulary"]["bos_id"] == env.vocabulary.bos_id
    )
    with pytest.raises(ValueError, match="vocabulary has 41 tokens, 40 of them outputs; the config's vocab_size is 35"):
        config.replace(vocabulary=vocabulary("Tasks-v0"))
    with pytest.raises(TypeError, match=r"vocabulary must be None or a jrl\.envs\.Vocabulary"):
        config.replace(vocabulary=tuple(env.vocabulary.strings))
    document = json.loads((directory / "config.json").read_text())
    for bad in ({"strings": "abc"}, dict(document["config"]["vocabulary"], end_id=99)):
        (tmp_path / "config.json").write_text(
            json.dumps({**document, "config": {**document["config"], "vocabulary": bad}})
        )
        (tmp_path / "model.safetensors").write_bytes((directory / "model.safetensors").read_bytes())
        with pytest.raises(ModelFileError, match=r"not a valid model config .*[Vv]ocabulary"):
            load_model(tmp_path)
