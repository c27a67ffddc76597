"""Hugging Face GPT-2 checkpoints in and out of jrl (``jrl.text.hf``), checked against ``transformers``.

The reference is ``transformers`` itself on torch's CPU: a tiny random GPT-2 (``GPT2Config``,
``save_pretrained``) with every weight drawn at a scale where the logits differ clearly (so a
transposed or misplaced weight cannot hide), and a byte-level BPE tokenizer trained here with
``tokenizers``. jrl's logits must be ``transformers``' within 1e-4, ``jrl generate --greedy`` must
write the texts of ``model.generate(do_sample=False)``, and jrl's own Hugging Face directory must
load back into ``transformers`` with the same logits.
"""

from __future__ import annotations

import json
import shutil

import jax
import numpy as np
import pytest

from jrl import cli
from jrl.text import LanguageModel, LMConfig, ModelFileError, generate, load_model, save_model

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

SENTENCES = [
    "the cat sat on the mat.",
    "a dog ran after the red ball in the park.",
    "reinforcement learning with jax is fast.",
    "the quick brown fox jumps over the lazy dog!",
    "numbers like 12 and 345 appear here, too.",
    "Hugging Face models load in jrl.",
]
PROMPTS = ["the cat", "a dog", "jax is", "The", "quick fox", "12 and", "learning", "the mat.", "Hi\nthere", "park in"]
POSITIONS = 32
END = "<|endoftext|>"
IDS = np.random.default_rng(0).integers(0, 256, (3, POSITIONS))  # input ids for the logits checks


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    """A tiny random GPT-2 directory as ``transformers`` writes it, with a ``tokenizer.json``."""
    directory = tmp_path_factory.mktemp("gpt2")
    bpe = tokenizers.ByteLevelBPETokenizer()
    bpe.train_from_iterator(SENTENCES, vocab_size=300, min_frequency=1, special_tokens=[END], show_progress=False)
    bpe.save(str(directory / "tokenizer.json"))
    end_id = bpe.token_to_id(END)
    config = transformers.GPT2Config(
        n_layer=2,
        n_head=2,
        n_embd=32,
        n_positions=POSITIONS,
        vocab_size=bpe.get_vocab_size(),
        bos_token_id=end_id,
        eos_token_id=end_id,
    )
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():  # scales where a misplaced weight changes every logit: LN near 1, the rest O(0.3)
        for name, p in model.named_parameters():
            p.copy_((1.0 if "ln_" in name and name.endswith("weight") else 0.0) + 0.3 * torch.randn_like(p))
    model.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def reference(hf_dir):
    return transformers.AutoModelForCausalLM.from_pretrained(hf_dir).eval()


@pytest.fixture(scope="module")
def jrl_model(hf_dir):
    return load_model(hf_dir)


@jax.jit
def jrl_logits(model, ids):
    return model.apply(ids)


def torch_logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor(ids, dtype=torch.long)).logits.numpy()


def test_config_is_gpt2s_and_logits_equal_transformers(hf_dir, reference, jrl_model):
    config = jrl_model.config
    assert (config.tied_head, config.layer_norm_epsilon, config.context_length) == (True, 1e-5, POSITIONS)
    assert (config.vocab_size, config.d_model, config.num_layers, config.num_heads) == (
        reference.config.vocab_size,
        32,
        2,
        2,
    )
    ids = IDS
    want = torch_logits(reference, ids)
    got = np.asarray(jrl_logits(jrl_model, ids))
    assert np.abs(want).max() > 1.0  # logits far apart: the 1e-4 below is a real check
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


def test_greedy_generate_equals_transformers(hf_dir, reference, jrl_model, capsys):
    tokenizer = jrl_model.tokenizer
    # Every row gets the same budget, what the longest prompt leaves of the buffer (generate's rule).
    new_tokens = POSITIONS - max(len(tokenizer.encode(prompt)) for prompt in PROMPTS)
    expected_ids = []
    for prompt in PROMPTS:
        ids = tokenizer.encode(prompt)
        out = reference.generate(
            torch.tensor([ids]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            do_sample=False,
            max_new_tokens=new_tokens,
            pad_token_id=tokenizer.end_id,
            eos_token_id=tokenizer.end_id,
        )[0].tolist()
        expected_ids.append(out)
    raw = tokenizers.Tokenizer.from_file(str(hf_dir / "tokenizer.json"))
    expected = [
        raw.decode(ids[: ids.index(tokenizer.end_id)] if tokenizer.end_id in ids else ids) for ids in expected_ids
    ]
    assert all(text.startswith(prompt) for text, prompt in zip(expected, PROMPTS, strict=True))
    assert len(set(expected)) == len(PROMPTS)

    args = ["generate", str(hf_dir), "--greedy", "--max-new-tokens", str(new_tokens)] + [
        a for p in PROMPTS for a in ("--prompt", p)
    ]
    assert cli.main(args) == 0
    # A random model writes control bytes: the command prints a newline in a text as \n, and only
    # "\n" ends a line (str.splitlines would split on others too).
    printed = capsys.readouterr().out.split("\n")
    assert printed == [text.replace("\n", "\\n") for text in expected] + [""]
    assert any("\n" in text for text in expected)  # the escaping is exercised

    # refused before anything compiles: GPT-2 adds no bos, so a prompt needs a token; a buffer longer
    # than n_positions; --context-length for a directory that is not Hugging Face's
    assert cli.main(["generate", str(hf_dir)]) == 2
    assert cli.main(["generate", str(hf_dir), "--prompt", "a", "--context-length", str(POSITIONS + 1)]) == 2
    assert cli.main(["generate", str(hf_dir / "config.json"), "--prompt", "a", "--context-length", "8"]) == 2
    errors = capsys.readouterr().err
    assert "prompt 0 is empty" in errors and "context_length must be an int in [2, n_positions=32]" in errors
    assert "--context-length shortens a Hugging Face directory's buffer" in errors

    out = generate(jrl_model, PROMPTS, jax.random.key(0), do_sample=False, max_new_tokens=new_tokens)
    for row, length, ids in zip(out.tokens, out.lengths, expected_ids, strict=True):
        stop = ids.index(tokenizer.end_id) if tokenizer.end_id in ids else len(ids)
        assert row[:length].tolist() == ids[:stop]


def test_save_hf_round_trips_through_transformers(tmp_path, hf_dir, jrl_model):
    # New weights in jrl (NumPy noise on every weight, so a misplaced bias or scale shows) and a
    # shorter buffer: what jrl writes, transformers must compute.
    config = jrl_model.config.replace(context_length=16)
    rng = np.random.default_rng(8)
    params = jax.tree_util.tree_map(
        lambda x: (np.asarray(x) + 0.05 * rng.standard_normal(x.shape)).astype(np.float32), jrl_model.params
    )
    params["params"]["position_embedding"] = params["params"]["position_embedding"][:16]
    made = LanguageModel(config, params, jrl_model.tokenizer)
    out = save_model(tmp_path / "out", made, format="hf")
    loaded = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    ids = IDS[:, :16]
    np.testing.assert_allclose(np.asarray(jrl_logits(made, ids)), torch_logits(loaded, ids), atol=1e-4, rtol=0)
    fast = transformers.AutoTokenizer.from_pretrained(out)
    direct = transformers.PreTrainedTokenizerFast(tokenizer_file=str(out / "tokenizer.json"))
    for tokenizer in (fast, direct):
        assert tokenizer("the cat sat")["input_ids"] == jrl_model.tokenizer.encode("the cat sat")
    assert fast.eos_token_id == jrl_model.tokenizer.end_id
    # and back: jrl reads its own Hugging Face directory into the same model
    again = load_model(out)
    assert again.config == config and again.tokenizer == made.tokenizer
    jax.tree_util.tree_map(np.testing.assert_array_equal, again.params, made.params)
    # a shorter buffer keeps the checkpoint's first positions, every other weight as it is
    short = load_model(hf_dir, context_length=8)
    assert short.config == jrl_model.config.replace(context_length=8)
    want = dict(jrl_model.params["params"], position_embedding=jrl_model.params["params"]["position_embedding"][:8])
    jax.tree_util.tree_map(np.testing.assert_array_equal, short.params["params"], want)


def test_grpo_tunes_a_hugging_face_model_that_transformers_loads_back(tmp_path, hf_dir, jrl_model, capsys):
    # The loop docs/rl_for_language_models.md walks: a Hugging Face directory, tasks from a JSONL
    # file in its tokenizer's tokens, `jrl train --algo grpo`, `jrl generate RUN`, then
    # `jrl export RUN --format hf` for transformers. format_reward gives a random model's groups
    # rewards that differ, so the advantages, and the update, are not zero.
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(
        "".join(
            json.dumps({"prompt": p, "answer": a}) + "\n"
            for p, a in [("the cat", " sat"), ("a dog", " ran"), ("the quick", " fox"), ("red", " ball")]
        )
    )
    run = tmp_path / "run"
    env_kwargs = [f"path={tasks}", f"tokenizer={hf_dir}", f"length={POSITIONS}", "format_reward=0.5", "test_fraction=0"]
    settings = [f"pretrained={hf_dir}", "num_steps=2", "num_prompts=2", "group_size=4", "learning_rate=0.01"]
    args = ["train", "--algo", "grpo", "--env", "Tasks-v0", "--out", str(run)]
    args += [a for kw in env_kwargs for a in ("--env-kwarg", kw)] + [a for kw in settings for a in ("--set", kw)]
    assert cli.main(args) == 0
    capsys.readouterr()
    assert cli.main(["generate", str(run), "--greedy", "--prompt", "the cat", "--prompt", "a dog"]) == 0
    printed = capsys.readouterr().out.split("\n")
    assert printed[0].startswith("the cat") and printed[1].startswith("a dog")
    assert cli.main(["export", str(run), "--format", "hf"]) == 0
    out = run / "export" / "text-seed0-hf"
    assert capsys.readouterr().out.strip() == str(out)
    tuned = load_model(out)
    assert tuned.config == jrl_model.config and tuned.tokenizer == jrl_model.tokenizer
    moved = jax.tree_util.tree_map(
        lambda a, b: float(np.abs(np.asarray(a) - np.asarray(b)).max()), tuned.params, jrl_model.params
    )
    assert max(jax.tree_util.tree_leaves(moved)) > 1e-4  # GRPO changed the weights
    loaded = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    np.testing.assert_allclose(np.asarray(jrl_logits(tuned, IDS)), torch_logits(loaded, IDS), atol=1e-4, rtol=0)
    # a model that cannot be GPT-2 is refused with the reason: jrl's own (a head with a bias), --int8
    assert cli.main(["export", str(run), "--format", "hf", "--int8"]) == 2
    assert "no --int8" in capsys.readouterr().err


def test_soft_q_learning_refuses_a_gpt2_model_with_the_reason(tmp_path, hf_dir, jrl_model):
    # Its Q-network is the language model's shape with an output layer of its own, started at 0;
    # GPT-2's output layer is the token embedding. Refused before anything compiles, not a KeyError.
    import jrl
    from jrl.text import q_learning as text_q

    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps({"prompt": "the cat", "answer": " sat"}) + "\n")
    env, env_params = jrl.make("Tasks-v0", path=str(tasks), tokenizer=str(hf_dir), test_fraction=0.0)
    config = text_q.default_config("Arithmetic-v0").replace(pretrained=str(hf_dir))
    with pytest.raises(ValueError, match=r"output layer of its own.*--algo grpo"):
        text_q.make_algorithm(config, env, env_params)


def test_old_configs_and_jrl_models_unchanged(tmp_path):
    config = LMConfig("WordGen-v0", 28, 27, 9, d_model=16, num_layers=1, num_heads=2)
    assert "tied_head" not in config.to_dict() and "layer_norm_epsilon" not in config.to_dict()
    assert LMConfig.from_dict(config.to_dict()) == config
    model = LanguageModel(config, {})  # the refusals come before any weight is read
    with pytest.raises(ValueError, match="tied_head"):
        save_model(tmp_path / "x", model, format="hf")
    with pytest.raises(ValueError, match="num_outputs"):
        LMConfig("WordGen-v0", 28, 27, 9, tied_head=True)
    with pytest.raises(ValueError, match="context_length"):
        load_model(save_model(tmp_path / "jrl", model), context_length=4)


def broken(tmp_path, hf_dir, name, change=None, remove=None):
    directory = tmp_path / name
    shutil.copytree(hf_dir, directory)
    if change:
        config = json.loads((directory / "config.json").read_text())
        config.update(change)
        (directory / "config.json").write_text(json.dumps(config))
    if remove:
        (directory / remove).unlink()
    return directory


@pytest.mark.parametrize(
    ("change", "remove", "message"),
    [
        ({"model_type": "llama"}, None, "model_type 'llama' is not supported"),
        ({"scale_attn_by_inverse_layer_idx": True}, None, "scale_attn_by_inverse_layer_idx=True"),
        ({"add_cross_attention": True}, None, "add_cross_attention=True"),
        ({"activation_function": "relu"}, None, "activation_function='relu'"),
        ({"tie_word_embeddings": False}, None, "tie_word_embeddings=False"),
        ({"n_inner": 48}, None, "n_inner=48"),
        ({"n_embd": 64}, None, r"h.0.ln_1.weight: float32\[32\], the config needs float32\[64\]"),
        ({"n_layer": 3}, None, "missing h.2.attn.c_attn.bias"),
        ({"n_positions": 16}, None, "wpe.weight: 32 positions, config.json's n_positions is 16"),
        ({"eos_token_id": 10**6}, None, "eos_token_id=1000000"),
        (None, "tokenizer.json", "has no tokenizer.json"),
        (None, "model.safetensors", "model.safetensors is missing"),
    ],
)
def test_bad_directories_are_refused(tmp_path, hf_dir, change, remove, message):
    directory = broken(tmp_path, hf_dir, "bad", change, remove)
    with pytest.raises(ModelFileError, match=message):
        load_model(directory)
