"""Exported text models (``jrl.export.text``) decode as ``jrl.text.generate`` does, in every format.

- The file round trip (``.npz``, ``.safetensors``) is exact; int8 keeps every weight within half
  a step and the file 3.5x smaller; a damaged or mismatched file is refused with the fault named.
- Greedy decoding of 100 prompts is the same text in ``jrl.text.generate`` (the cached decoder),
  the export's own JAX function, its StableHLO program, ONNX Runtime and TensorFlow (the
  ``generate`` signature, from strings to strings, in a Python that cannot import JAX); seeded
  sampling is the same draw in JAX and TensorFlow.
"""

from __future__ import annotations

import json
import subprocess
import sys

import jax
import numpy as np
import onnx
import onnxruntime
import pytest

from jrl.envs import vocabulary
from jrl.export import text as text_export
from jrl.export.onnx_model import export_onnx
from jrl.export.stablehlo import StableHLOText, export_stablehlo, load_stablehlo
from jrl.export.tensorflow import TFText, export_tf, load_tf
from jrl.text import LMConfig, generate, init_model
from jrl.text.generate import encode_prompts

NUM_PROMPTS = 100
ENVS = {  # vocab_size, num_outputs, context_length: WordGen has a bos token, GraphWalk joins with spaces
    "WordGen-v0": (28, 27, 12),
    "GraphWalkText-v0": (22, 22, 14),
}


def prompts_for(env_id: str, rng: np.random.Generator) -> list[str]:
    """NUM_PROMPTS prompts of 0-3 letters (words) or 1-3 nodes (walks)."""
    if env_id == "WordGen-v0":
        return ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), rng.integers(0, 4))) for _ in range(NUM_PROMPTS)]
    return [" ".join(map(str, rng.integers(0, 21, rng.integers(1, 4)))) for _ in range(NUM_PROMPTS)]


@pytest.fixture(scope="module")
def pair(request):
    """A random one-layer language model and Q-model of the environment (``indirect`` parameter:
    WordGen's vocabulary has a bos token and splits prompts into letters, GraphWalk's none and
    splits at spaces), exported with beta 3. Each test takes the one or both it needs."""
    env_id = request.param
    vocab_size, outputs, length = ENVS[env_id]
    config = LMConfig(env_id, vocab_size, outputs, length, d_model=32, num_layers=1)
    lm, q_model = init_model(config, jax.random.key(0)), init_model(config, jax.random.key(1))
    export = text_export.export_text(lm, q_model, beta=3.0)
    prompts = prompts_for(env_id, np.random.default_rng(0))
    return env_id, lm, q_model, export, prompts


def greedy_texts(model, q_model, beta, prompts):
    return generate(model, prompts, jax.random.key(0), do_sample=False, beta=beta, q_params=q_model).texts


@pytest.mark.parametrize("pair", ["WordGen-v0"], indirect=True)
def test_files_round_trip_exactly_and_describe_themselves(pair, tmp_path):
    _, lm, q_model, export, _ = pair
    for suffix in (".npz", ".safetensors"):
        loaded = text_export.TextExport.load(export.save(tmp_path / f"m{suffix}"))
        assert loaded.spec == export.spec and loaded.spec["format"] == "jrl-text-model"
        back_lm, back_q, beta = loaded.models()
        assert beta == 3.0 and back_lm.config == lm.config
        for original, read in ((lm, back_lm), (q_model, back_q)):
            same = jax.tree_util.tree_map(np.array_equal, original.params, read.params)
            assert all(jax.tree_util.tree_leaves(same))


@pytest.mark.parametrize("pair", ["WordGen-v0"], indirect=True)
def test_int8_keeps_each_weight_within_half_a_step_and_the_file_3_5x_smaller(pair, tmp_path):
    env_id, _, _, export, _ = pair
    small = export.quantized("int8")
    assert small.spec["weights"] == "int8"
    kernel = small.arrays["lm/params/blocks_0/mlp_in/kernel"]
    embedding = small.arrays["lm/params/token_embedding/embedding"]
    assert kernel.dtype == np.int8 and embedding.dtype == np.int8
    assert small.arrays["lm/params/blocks_0/mlp_in/bias"].dtype == np.float16
    float_params = export.params("lm")
    int8_params = small.params("lm")
    for path in (("blocks_0", "mlp_in", "kernel"), ("token_embedding", "embedding"), ("head", "kernel")):
        name = "lm/params/" + "/".join(path)
        axis = 0 if path[0] == "token_embedding" else 1
        scale = small.arrays[f"{name}_scale"].astype(np.float32)
        step = scale[:, None] if axis == 0 else scale[None, :]
        original = float_params["params"]
        quantized = int8_params["params"]
        for part in path:
            original, quantized = original[part], quantized[part]
        assert np.all(np.abs(quantized - original) <= step / 2 * (1 + 1e-3))
    # The size of the models jrl pretrains (LMConfig's defaults: 2 layers of width 64): the
    # fixture's one layer of 32 is small enough for the header and vectors to weigh (3.2x).
    vocab_size, outputs, length = ENVS[env_id]
    full = init_model(LMConfig(env_id, vocab_size, outputs, length), jax.random.key(3))
    full_export = text_export.export_text(full, full, beta=1.0)
    float_bytes = full_export.save(tmp_path / "f.safetensors").stat().st_size
    int8_bytes = full_export.quantized("int8").save(tmp_path / "q.safetensors").stat().st_size
    assert float_bytes / int8_bytes >= 3.5
    assert export.quantized("float16").arrays["q/params/head/kernel"].dtype == np.float16
    brain = text_export.TextExport.load(export.quantized("bfloat16").save(tmp_path / "b.safetensors"))
    assert {a.dtype for a in brain.arrays.values()} == {np.dtype(np.uint16)}  # bfloat16's bits
    leaves = jax.tree_util.tree_leaves
    for original, cast in zip(leaves(float_params), leaves(brain.params("lm")), strict=True):
        assert np.all(np.abs(cast - original) <= np.abs(original) * 2.0**-8)  # 8 bits, rounded to nearest
    with pytest.raises(ValueError, match="quantized already"):
        small.quantized("int8")
    with pytest.raises(ValueError, match="weights must be one of"):
        export.quantized("int4")


@pytest.mark.parametrize("pair", ["WordGen-v0"], indirect=True)
def test_the_export_s_decoding_is_generate_s_greedy_and_sampled(pair):
    """The export's JAX function (no cache, the arrays as stored) writes jrl.text.generate's texts:
    greedy, and sampled with the same seed; the int8 export's too, against generate on its models."""
    env_id, lm, _, export, prompts = pair
    vocab = vocabulary(env_id)
    tokens, lengths = encode_prompts(vocab, prompts, lm.config.context_length)
    room = lm.config.context_length - int(lengths.max())
    for model in (export, export.quantized("int8")):
        greedy = jax.jit(text_export.generate_function(model))(tokens, lengths, np.int32(room))
        assert vocab.decode_batch(np.asarray(greedy)) == greedy_texts(*model.models(), prompts)
    base, q, beta = export.models()
    sampled = jax.jit(text_export.generate_function(export, sample=True))
    drawn = sampled(tokens, lengths, np.int32(room), np.int32(7), np.float32(0.8))
    expected = generate(base, prompts, jax.random.key(7), temperature=0.8, beta=beta, q_params=q).texts
    assert vocab.decode_batch(np.asarray(drawn)) == expected
    assert len(set(expected)) > 10  # drawn, not one text


@pytest.mark.parametrize("pair", ["GraphWalkText-v0"], indirect=True)
def test_the_stablehlo_program_decodes_the_same_texts(pair, tmp_path):
    """The int8 model's greedy decoding as a StableHLO program writes the JAX decoder's texts."""
    env_id, _, _, export, prompts = pair
    small = export.quantized("int8")
    vocab = vocabulary(env_id)
    tokens, lengths = encode_prompts(vocab, prompts, small.config.context_length)
    room = small.config.context_length - int(lengths.max())
    program = load_stablehlo(export_stablehlo(small, tmp_path / "m.stablehlo"))
    assert isinstance(program, StableHLOText) and program.spec == small.spec
    assert vocab.decode_batch(program(tokens, lengths, room)) == greedy_texts(*small.models(), prompts)


@pytest.mark.parametrize("pair", ["WordGen-v0"], indirect=True)
def test_onnx_runtime_decodes_the_same_texts_with_int8_weights_in_the_graph(pair, tmp_path):
    """The int8 model's greedy decoding in ONNX Runtime (an ONNX Loop whose graph keeps the int8
    weights as int8 initializers) writes the JAX decoder's texts."""
    env_id, _, _, export, prompts = pair
    small = export.quantized("int8")
    vocab = vocabulary(env_id)
    tokens, lengths = encode_prompts(vocab, prompts, small.config.context_length)
    room = small.config.context_length - int(lengths.max())
    path = export_onnx(small, tmp_path / "m.onnx")
    model = onnx.load(str(path))
    metadata = {entry.key: entry.value for entry in model.metadata_props}
    assert metadata["jrl_format"] == "jrl-onnx-text 1" and json.loads(metadata["jrl_text"]) == small.spec
    dtypes = {init.data_type for graph in _graphs(model.graph) for init in graph.initializer}
    assert onnx.TensorProto.INT8 in dtypes
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # the converter leaves unused constants in the loop's body
    session = onnxruntime.InferenceSession(str(path), options)
    feed = {"tokens": tokens, "prompt_lengths": lengths, "max_new_tokens": np.array(room, np.int32)}
    (generated,) = session.run(None, feed)
    assert vocab.decode_batch(generated) == greedy_texts(*small.models(), prompts)


@pytest.mark.parametrize("pair", ["WordGen-v0"], indirect=True)  # letters; walks' spaces: the test below
def test_tensorflow_generates_the_same_texts_from_strings(pair, tmp_path):
    """The SavedModel's ``generate`` (tokenising, decoding and detokenising in the graph) writes
    the JAX texts of the int8 model for 100 prompts; ``sample`` with a seed draws what
    ``jrl.text.generate`` draws with that key; a prompt with a piece outside the vocabulary fails."""
    import tensorflow as tf

    _, _, _, export, prompts = pair
    small = export.quantized("int8")
    loaded = load_tf(export_tf(small, tmp_path / "m.savedmodel"))
    assert isinstance(loaded, TFText) and loaded.spec == small.spec
    lm, q_model, beta = small.models()
    assert loaded.generate(prompts) == greedy_texts(lm, q_model, beta, prompts)
    drawn = generate(lm, prompts, jax.random.key(3), temperature=0.7, beta=beta, q_params=q_model).texts
    assert loaded.sample(prompts, seed=3, temperature=0.7) == drawn
    with pytest.raises(tf.errors.InvalidArgumentError, match="not a prompt token"):
        loaded.generate(["3 x" if " " in loaded.spec["vocabulary"]["separator"] else "aB"])


@pytest.mark.parametrize("pair", ["GraphWalkText-v0"], indirect=True)
def test_tensorflow_alone_generates_from_strings(pair, tmp_path):
    """``tf.saved_model.load(path).generate(tf.constant([...]))`` in a Python that cannot import JAX."""
    _, _, _, export, prompts = pair
    path = export_tf(export, tmp_path / "m.savedmodel")
    script = f"""
import sys
sys.modules["jax"] = sys.modules["jaxlib"] = None  # any import of JAX now raises ImportError
import tensorflow as tf
model = tf.saved_model.load({str(path)!r})
for text in model.generate(tf.constant({prompts[:10]!r})).numpy():
    print(text.decode())
"""
    done = subprocess.run([sys.executable, "-c", script], check=True, timeout=120, capture_output=True, text=True)
    assert done.stdout.splitlines() == greedy_texts(*export.models(), prompts[:10])


def _graphs(graph):
    """``graph`` and every subgraph (a Loop's body) inside it."""
    yield graph
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.g.ByteSize():
                yield from _graphs(attribute.g)


def _spec_with(export, **changes):
    return {**export.spec, **changes}


@pytest.mark.parametrize("pair", ["WordGen-v0"], indirect=True)
def test_damaged_or_mismatched_files_are_refused_with_the_fault_named(pair, tmp_path):
    _, _, _, export, _ = pair
    good = export.save(tmp_path / "good.npz")
    cases = {
        "truncated": good.read_bytes()[: good.stat().st_size // 2],
        "not a zip": b"not a model",
    }
    for name, data in cases.items():
        (tmp_path / f"{name}.npz").write_bytes(data)
        with pytest.raises(ValueError, match=f"{name}.npz: "):
            text_export.TextExport.load(tmp_path / f"{name}.npz")
    arrays = dict(export.arrays)
    refusals = [
        (_spec_with(export, version=2), arrays, "version 2; this jrl reads version 1"),
        (_spec_with(export, format="jrl-numpy-q-policy"), arrays, "not a jrl-text-model file"),
        (_spec_with(export, q_head=False, beta=0.0), arrays, "unexpected q/params"),
        (_spec_with(export, q_head=False, beta=1.0), arrays, "beta=1.0 weights a Q-head"),
        (_spec_with(export, weights="int8"), arrays, "missing lm/params/blocks_0/mlp_in/kernel_scale"),
        (_spec_with(export, model={**export.spec["model"], "d_model": 64}), arrays, "the spec needs float32"),
        (_spec_with(export, model={**export.spec["model"], "num_heads": 5}), arrays, "not a valid LMConfig"),
        (_spec_with(export, vocabulary={**export.spec["vocabulary"], "separator": "-"}), arrays, "differs from"),
        (_spec_with(export, extra=1), arrays, "unknown \\['extra'\\]"),
    ]
    head = "lm/params/head/kernel"
    refusals.append((export.spec, {**arrays, head: arrays[head][:-1]}, f"{head} is float32"))
    refusals.append((export.spec, {**arrays, head: np.full_like(arrays[head], np.nan)}, "non-finite"))
    refusals.append((export.spec, {k: v for k, v in arrays.items() if k != head}, f"missing {head}"))
    for spec, changed, message in refusals:
        with pytest.raises(ValueError, match=message):
            text_export.TextExport(spec, changed)
    np.savez(tmp_path / "bad.npz", spec=np.array(json.dumps(_spec_with(export, version=9))), **arrays)
    with pytest.raises(ValueError, match=r"bad\.npz: jrl-text-model version 9"):
        text_export.TextExport.load(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="q_model is None"):
        text_export.export_text(init_model(export.config, jax.random.key(2)), beta=2.0)
