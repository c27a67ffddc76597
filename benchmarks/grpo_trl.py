"""GRPO on Arithmetic-v0: jrl's compiled ``grpo`` against TRL's ``GRPOTrainer`` (torch), on CPU, in one run.

Both libraries train the same tiny GPT-2-shaped model (2 layers, width 64, 4 heads; Arithmetic's 16
tokens; made and briefly pretrained by jrl from a fixed seed) on the same task (``Arithmetic-v0``,
2-digit addition, prompts like ``37+45=``, the environment's train split) with the same GRPO
settings, jrl's defaults for Arithmetic-v0 unless overridden: ``--prompts`` prompts per update,
``--group`` completions per prompt, temperature 1 (no top-k, no top-p), completions of at most 5
tokens (what the 12-token buffer leaves after ``<bos>99+99=``), KL beta, clip epsilon, Adam at a
constant learning rate, gradient norm clipped to 1, one Adam step per generated batch, the loss
averaged over every generated token of the batch (TRL's ``loss_type="bnpo"``), advantages
``(r - group mean) / (group std + 1e-4)`` (``scale_rewards="group"``). The reward is 1 for the
exact answer followed by the end token, else 0: jrl computes it in JAX inside the environment; TRL
takes Python reward functions, so its reward compares the decoded completion with ``solve(prompt)``.

What is timed, in ``--repeats`` rounds that alternate the libraries (both meet the same load from
other processes; the table shows each library's median round, the best rounds are printed too):

- jrl: ``grpo.make_train`` for ``--updates`` iterations, compiled once (``jax.jit(train).lower(key)
  .compile()``, the compile column) and called once untimed; a round is one call (its own key):
  sampling every completion (one ``lax.scan`` over the buffer's positions with a key/value cache,
  the environment writing and rewarding each token), the policy's (sampling-time) and the
  reference's log-probabilities, and the Adam step, one XLA program.
- TRL: a fresh ``GRPOTrainer`` per round (seed ``--seed + round``) for ``1 + --updates`` optimizer
  steps; the first is its warm-up (the first round's is the warm-up column), the rest are timed
  between ``on_step_end`` callbacks, so each includes the data loader, tokenising the prompts,
  ``model.generate`` (a Python loop over tokens), decoding, the reward function, the reference's
  and the policy's forward passes, the backward pass and the optimizer step.

Sampled tokens are the completions' tokens, the end token included (jrl: the tokens the run counts,
``env_steps``; TRL: the ``completion_ids`` its reward function receives), per second of update time.
"Sampling tokens/s" is per second of sampling alone: jrl's ``rollout`` (what an iteration runs to
sample) compiled apart, the median of 3 calls per round from the starting model; TRL's
``_generate_single_turn`` (left-padding the prompts, ``model.generate``, cutting each completion
after its end token), timed inside the rounds' steps.

Where the arithmetic goes: after the rounds, one forward pass and one forward + backward pass of
a log-likelihood over ``prompts x group`` random 12-token buffers are timed for jrl's model (XLA)
and TRL's (torch), alternating, the median of 7 (printed below the table).

The model bridge: jrl's Arithmetic model has an output layer of its own (15 scores, with a bias;
``<bos>`` is never an action) while GPT-2's ``lm_head`` has no bias and scores all 16 tokens. The
benchmark gives one channel ``c`` of the final layer norm scale 0 and bias 1 (in jrl's model, after
pretraining, on the channel whose scores move least), so that channel is the constant 1: GPT-2's
``lm_head`` column ``c`` carries jrl's bias, and ``<bos>``'s row scores -1e4 (never sampled). The
body and the tokenizer are written by ``jrl.text.save_model(dir, model, format="hf")``; the
benchmark adds the untied ``lm_head.weight`` (``tie_word_embeddings: false``) and zero dropout to
that directory, and TRL loads the policy and the reference from it. It checks that the
``transformers`` model's logits equal jrl's within 1e-4 (and prints the largest difference), and
that TRL's Python reward gives jrl's completions (a sampled batch per round) jrl's own rewards.

Threads: torch runs ``--threads`` threads (``torch.set_num_threads``, default 2, this machine's
cores); XLA's CPU client uses every core it sees (2 here). ``--omp-wait-policy`` sets
``OMP_WAIT_POLICY`` before torch loads: the default ``passive`` makes torch's OpenMP threads sleep
rather than spin while they wait. On a machine shared with other processes spinning threads stall
each other: measured here (docs/benchmarks.md) ``unset`` (torch's default) made torch's forward and
backward passes 10-25x slower and TRL's updates about 16x slower (an idle machine was not
available to measure the policy on). Needs ``pip install -e ".[bench]"`` (trl).

    python3 benchmarks/grpo_trl.py                # about 1-3 minutes on 2 cores
    python3 benchmarks/grpo_trl.py --prompts 8    # smaller batches: TRL's per-step overhead weighs more
    python3 benchmarks/grpo_trl.py --quick        # a smoke run: 1 round of 2 updates, NOT results
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jrl
from jrl.envs.arithmetic import BOS, END, solve, vocabulary
from jrl.text import LanguageModel, PretrainConfig, grpo, pretrain, save_model
from jrl.text.hf import HFTokenizer
from jrl.text.q_learning import rollout

ENV_ID = "Arithmetic-v0"
ENV_KWARGS = {"digits": 2, "ops": "+"}
MAX_COMPLETION = 5  # the buffer (12) minus the longest prompt with <bos> (7): what jrl's episodes can write
BOS_LOGIT = -1e4  # GPT-2's score for <bos>, which jrl's model never outputs: exp(-1e4) is 0 in float32


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = grpo.default_config(ENV_ID)  # jrl's GRPO settings for Arithmetic-v0 (read here, not copied)
    parser.add_argument("--prompts", type=int, default=defaults.num_prompts, help="prompts per update (jrl's default)")
    parser.add_argument(
        "--group", type=int, default=defaults.group_size, help="completions per prompt, G (jrl's default)"
    )
    parser.add_argument("--updates", type=int, default=10, help="timed updates per library (default 10)")
    parser.add_argument("--repeats", type=int, default=5, help="rounds, each timing both libraries (default 5)")
    parser.add_argument("--pretrain-steps", type=int, default=300, help="jrl's supervised pretraining (default 300)")
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate, help="Adam's (jrl's default)")
    parser.add_argument("--beta", type=float, default=defaults.beta_kl, help="KL penalty weight (jrl's default)")
    parser.add_argument("--epsilon", type=float, default=defaults.clip_eps, help="clip range (jrl's default)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument(
        "--omp-wait-policy",
        choices=("passive", "active", "unset"),
        default="passive",
        help="OMP_WAIT_POLICY for torch's OpenMP threads (default passive: see the module docstring)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a smoke run (2 updates, 50 pretraining steps)")
    args = parser.parse_args(argv)
    if args.quick:
        args.updates, args.repeats, args.pretrain_steps = 2, 1, 50
    for name in ("prompts", "updates", "repeats", "pretrain_steps", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.group < 2:
        parser.error(f"--group must be >= 2 (advantages compare a group's completions), got {args.group}")
    return args


def make_model(key: jax.Array, env, env_params, pretrain_steps: int) -> tuple[LanguageModel, int]:
    """jrl's pretrained Arithmetic model with one final-norm channel made the constant 1 (module
    docstring): ``(model, channel)``. The channel is the one whose contribution to the scores,
    ``|scale| * |head row|``, is smallest, so the change moves the pretrained model least."""
    model, _ = pretrain(key, env, env_params, PretrainConfig(num_steps=pretrain_steps, batch_size=256))
    params = jax.tree_util.tree_map(np.asarray, model.params)["params"]
    norm, head = params["final_norm"], params["head"]
    channel = int(np.argmin(np.abs(norm["scale"]) * np.linalg.norm(head["kernel"], axis=1)))
    norm = {"scale": norm["scale"].copy(), "bias": norm["bias"].copy()}
    norm["scale"][channel], norm["bias"][channel] = 0.0, 1.0
    kernel = head["kernel"].copy()
    kernel[channel] = 0.0  # jrl keeps its bias; the constant channel adds nothing on jrl's side
    params = {**params, "final_norm": norm, "head": {"kernel": kernel, "bias": head["bias"]}}
    return LanguageModel(model.config, jax.tree_util.tree_map(jnp.asarray, {"params": params})), channel


def arithmetic_tokenizer() -> HFTokenizer:
    """Arithmetic's vocabulary as a Hugging Face tokenizer: one token per character, ``<end>`` (14)
    and ``<bos>`` (15) special, ``<bos>`` put before every encoded text (jrl's buffers start with it)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors

    strings = vocabulary().strings
    tokenizer = Tokenizer(models.WordLevel({s: i for i, s in enumerate(strings)}, unk_token="<end>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tokenizer.decoder = decoders.Fuse()
    tokenizer.add_special_tokens([strings[END], strings[BOS]])
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{strings[BOS]} $A", special_tokens=[(strings[BOS], BOS)]
    )
    return HFTokenizer(tokenizer, end_id=END)


def write_hf_directory(directory: Path, model: LanguageModel, channel: int) -> None:
    """``model`` as a GPT-2 directory TRL loads: the body and tokenizer by ``save_model(format="hf")``,
    then the untied ``lm_head.weight`` ``[16, D]`` (jrl's head, its bias on ``channel``, ``<bos>``
    scored ``BOS_LOGIT``) and dropout 0 (GPT2Config's default is 0.1; jrl's model has none)."""
    from safetensors.numpy import load_file, save_file

    tied = model.config.replace(num_outputs=model.config.vocab_size, tied_head=True)
    save_model(directory, LanguageModel(tied, model.params, arithmetic_tokenizer()), format="hf")
    head = jax.tree_util.tree_map(np.asarray, model.params)["params"]["head"]
    lm_head = np.zeros((model.config.vocab_size, model.config.d_model), np.float32)
    lm_head[: model.config.num_outputs] = head["kernel"].T
    lm_head[: model.config.num_outputs, channel] = head["bias"]
    lm_head[BOS, channel] = BOS_LOGIT
    weights = load_file(str(directory / "model.safetensors"))
    save_file({**weights, "lm_head.weight": lm_head}, str(directory / "model.safetensors"), metadata={"format": "pt"})
    config = json.loads((directory / "config.json").read_text())
    config.update(tie_word_embeddings=False, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    (directory / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def check_same_model(directory: Path, model: LanguageModel, prompts: list[str]) -> float:
    """The largest difference between jrl's scores and the ``transformers`` model's logits (tokens
    0..14) at every prompt position of ``prompts``; also checks ``<bos>``'s is ``BOS_LOGIT``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf_model = AutoModelForCausalLM.from_pretrained(directory).eval()
    hf_tokenizer = AutoTokenizer.from_pretrained(directory)
    worst = 0.0
    for prompt in prompts:
        ids = hf_tokenizer(prompt)["input_ids"]
        expected = vocabulary().encode(prompt)  # <bos> first, as the environment writes it
        if ids != expected:
            raise AssertionError(f"the Hugging Face tokenizer encodes {prompt!r} as {ids}, jrl as {expected}")
        buffer = np.full(model.config.context_length, END, np.int32)
        buffer[: len(ids)] = ids
        ours = np.asarray(model.apply(jnp.asarray(buffer)))[: len(ids)]
        with torch.no_grad():
            theirs = hf_model(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids))).logits[0].numpy()
        if not np.allclose(theirs[:, BOS], BOS_LOGIT, atol=1e-2):
            raise AssertionError(f"<bos> logits {theirs[:, BOS]}, expected {BOS_LOGIT}")
        worst = max(worst, float(np.max(np.abs(theirs[:, :BOS] - ours))))
    return worst


def sample_prompts(key: jax.Array, env, env_params, count: int) -> list[str]:
    """``count`` prompts of the environment's train split (its resets), as text (``"37+45="``)."""
    tokens, _ = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key, count), env_params)
    return vocabulary().decode_batch(np.asarray(tokens))


def python_reward(prompts: list[str], completions: list[str], completion_ids: list[list[int]]) -> list[float]:
    """TRL's side of the reward, in Python per completion: 1 for the exact answer (``solve(prompt)``)
    followed by the end token, else 0 (``Arithmetic-v0``'s reward with ``format_reward=0``)."""
    return [
        float(bool(ids) and ids[-1] == END and text == solve(prompt))
        for prompt, text, ids in zip(prompts, completions, completion_ids, strict=True)
    ]


def check_same_reward(batch: dict) -> int:
    """``python_reward`` of a jrl ``rollout`` batch's completions (``tokens`` ``[N, L]``, ``action`` and
    ``active`` ``[N, L - 1]``) must equal the environment's returns; returns how many were rewarded."""
    texts = vocabulary().decode_batch(np.asarray(batch["tokens"]))
    prompts = [text.partition("=")[0] + "=" for text in texts]
    completions = [text.partition("=")[2] for text in texts]
    actions, active = np.asarray(batch["action"]), np.asarray(batch["active"])
    completion_ids = [row[mask].tolist() for row, mask in zip(actions, active, strict=True)]
    ours = np.asarray(batch["reward"]).sum(axis=1)
    theirs = np.asarray(python_reward(prompts, completions, completion_ids))
    if not np.array_equal(ours, theirs):
        raise AssertionError(f"the Python reward differs from jrl's on {int(np.sum(ours != theirs))} completions")
    return int(np.sum(ours))


def grpo_config(args: argparse.Namespace) -> grpo.GRPOConfig:
    """jrl's side of the shared settings (module docstring), ``args.updates`` iterations in one record."""
    return grpo.GRPOConfig(
        num_prompts=args.prompts,
        group_size=args.group,
        num_steps=args.updates,
        learning_rate=args.learning_rate,
        clip_eps=args.epsilon,
        beta_kl=args.beta,
        updates_per_iteration=1,
        max_grad_norm=1.0,
        temperature=1.0,
        eval_episodes=0,
        log_interval=args.updates,  # one record per call: no logging work between iterations
    )


class JrlGRPO:
    """jrl's side: ``grpo.make_train`` for ``args.updates`` iterations compiled once (``compile_seconds``),
    and ``rollout`` (the sampling an iteration does) compiled once, from the starting model."""

    def __init__(self, args: argparse.Namespace, env, env_params, model: LanguageModel, key: jax.Array) -> None:
        self.args, self.key, self.params = args, key, model.params
        train = grpo.make_train(grpo_config(args), env, env_params, model)
        start = time.perf_counter()
        self.train = jax.jit(train).lower(key).compile()
        self.compile_seconds = time.perf_counter() - start
        episodes = args.prompts * args.group
        sample = lambda k, params: rollout(  # noqa: E731
            k, env, env_params, model.config, params, None, 0.0, episodes, 1.0, group_size=args.group
        )
        self.sample = jax.jit(sample).lower(key, model.params).compile()
        # One untimed call of each (as TRL's first step is untimed): the first call of a compiled
        # program pays for allocating its buffers.
        jax.block_until_ready((self.train(jax.random.fold_in(key, 10**6)), self.sample(key, model.params)))

    def round(self, r: int) -> dict:
        """One timed call of ``args.updates`` iterations (key ``fold_in(key, r)``), then sampling alone
        timed on 3 calls (the median): seconds, tokens (the end token included), mean reward."""
        start = time.perf_counter()
        result = jax.block_until_ready(self.train(jax.random.fold_in(self.key, r)))
        seconds = time.perf_counter() - start
        sampling = []
        for i in range(3):
            start = time.perf_counter()
            batch = jax.block_until_ready(self.sample(jax.random.fold_in(self.key, 1000 + 3 * r + i), self.params))
            sampling.append((time.perf_counter() - start, float(jnp.sum(batch["active"]))))
        self.rewarded = check_same_reward(batch)  # untimed: the two libraries' rewards agree
        sampling_seconds, sampling_tokens = sorted(sampling)[1]
        return {
            "seconds": seconds,
            "tokens": float(result.metrics["env_steps"][-1]),  # generated over the call's iterations
            "reward": float(np.mean(result.metrics["episode_return"])),
            "sampling_seconds": sampling_seconds,
            "sampling_tokens": sampling_tokens,
        }


class TrlGRPO:
    """TRL's side: a fresh ``GRPOTrainer`` per round (seed ``seed + r``) from the model in ``directory``,
    ``1 + args.updates`` optimizer steps, the first the warm-up."""

    def __init__(self, args: argparse.Namespace, directory: Path, prompts: list[str], out: Path) -> None:
        import torch
        from transformers import TrainerCallback
        from trl import GRPOTrainer

        torch.set_num_threads(args.threads)
        self.args, self.directory, self.prompts, self.out = args, directory, prompts, out
        self.calls: list[tuple[int, list[float]]] = []  # per generation batch: (completion tokens, rewards)
        self.generation: list[float] = []  # seconds in _generate_single_turn, per generation batch
        generation = self.generation

        class StepTimes(TrainerCallback):
            """``perf_counter`` at the start of training and at the end of every optimizer step."""

            def __init__(self) -> None:
                self.times: list[float] = []

            def on_train_begin(self, *_, **__) -> None:
                self.times.append(time.perf_counter())

            def on_step_end(self, *_, **__) -> None:
                self.times.append(time.perf_counter())

        class TimedGRPOTrainer(GRPOTrainer):
            """``GRPOTrainer`` timing its sampling: TRL 1.16's method that left-pads the prompts, calls
            ``model.generate`` and cuts each completion after its end token."""

            def _generate_single_turn(self, *a, **k):
                start = time.perf_counter()
                out = super()._generate_single_turn(*a, **k)
                generation.append(time.perf_counter() - start)
                return out

        self.step_times, self.trainer_class = StepTimes, TimedGRPOTrainer

    def reward(self, prompts: list[str], completions: list[str], completion_ids: list[list[int]], **_) -> list[float]:
        """TRL's reward function: ``python_reward``, recording the batch's tokens and rewards."""
        rewards = python_reward(prompts, completions, completion_ids)
        self.calls.append((sum(len(ids) for ids in completion_ids), rewards))
        return rewards

    def config(self, seed: int):
        """TRL's side of the shared settings (module docstring)."""
        from trl import GRPOConfig

        args = self.args
        return GRPOConfig(
            output_dir=str(self.out),
            per_device_train_batch_size=args.prompts * args.group,  # completions per optimizer step
            gradient_accumulation_steps=1,
            steps_per_generation=1,  # one optimizer step per generated batch
            num_iterations=1,  # one Adam step per batch (jrl: updates_per_iteration=1)
            num_generations=args.group,
            max_completion_length=MAX_COMPLETION,
            temperature=1.0,
            top_p=1.0,
            top_k=0,
            beta=args.beta,
            epsilon=args.epsilon,
            loss_type="bnpo",  # mean over every generated token of the batch, as jrl's loss
            scale_rewards="group",  # (r - group mean) / (group std + 1e-4), as jrl's advantages
            learning_rate=args.learning_rate,
            lr_scheduler_type="constant",
            warmup_steps=0,
            weight_decay=0.0,
            max_grad_norm=1.0,
            max_steps=1 + args.updates,
            use_cpu=True,
            bf16=False,
            fp16=False,
            activation_checkpointing=False,  # GRPOConfig turns it on by default; jrl's model recomputes nothing
            disable_dropout=True,
            report_to=[],
            logging_strategy="no",
            save_strategy="no",
            disable_tqdm=True,
            log_completions=False,
            dataloader_num_workers=0,
            seed=seed,
        )

    def round(self, r: int) -> dict:
        """One training run: the warm-up step's seconds, then over the timed steps: seconds, tokens
        (``completion_ids``, the end token included), mean reward, seconds of sampling."""
        from datasets import Dataset
        from transformers import AutoTokenizer
        from transformers.trainer_callback import PrinterCallback

        self.calls.clear()
        self.generation.clear()
        timer = self.step_times()
        trainer = self.trainer_class(
            model=str(self.directory),
            reward_funcs=self.reward,
            args=self.config(self.args.seed + r),
            train_dataset=Dataset.from_dict({"prompt": self.prompts}),
            processing_class=AutoTokenizer.from_pretrained(self.directory),
            callbacks=[timer],
        )
        trainer.remove_callback(PrinterCallback)  # its end-of-training summary (logging is off otherwise)
        trainer.train()
        steps = np.diff(timer.times)
        if not len(steps) == len(self.calls) == len(self.generation) == 1 + self.args.updates:
            raise AssertionError(
                f"expected {1 + self.args.updates} steps, reward calls and generations, got {len(steps)}, "
                f"{len(self.calls)}, {len(self.generation)}"
            )
        tokens = sum(t for t, _ in self.calls[1:])
        return {
            "warmup": float(steps[0]),
            "seconds": float(np.sum(steps[1:])),
            "tokens": float(tokens),
            "reward": float(np.mean([x for _, rewards in self.calls[1:] for x in rewards])),
            "sampling_seconds": float(np.sum(self.generation[1:])),
            "sampling_tokens": float(tokens),
        }


def time_passes(model: LanguageModel, directory: Path, rows: int, key: jax.Array) -> dict[str, float]:
    """Where an update's arithmetic goes: milliseconds (median of 7, the libraries alternating) of one
    forward pass and of one forward + backward pass of a log-likelihood over ``rows`` random buffers
    (``[rows, L]``), by jrl's model under ``jax.jit`` and by TRL's (``transformers``) under torch."""
    import torch
    from transformers import AutoModelForCausalLM

    length = model.config.context_length
    tokens = jax.random.randint(key, (rows, length), 0, model.config.num_outputs)
    weights = jax.random.normal(jax.random.fold_in(key, 1), (rows, length - 1))

    def objective(params: Any) -> jax.Array:
        log_probs = jax.nn.log_softmax(model.replace(params=params).apply(tokens)[:, :-1])
        return jnp.sum(jnp.take_along_axis(log_probs, tokens[:, 1:, None], axis=-1)[..., 0] * weights)

    jax_forward, jax_grad = jax.jit(objective), jax.jit(jax.grad(objective))
    hf_model = AutoModelForCausalLM.from_pretrained(directory)
    torch_tokens, torch_weights = torch.tensor(np.asarray(tokens)), torch.tensor(np.asarray(weights))

    def torch_objective() -> Any:
        log_probs = torch.log_softmax(hf_model(torch_tokens).logits[:, :-1], dim=-1)
        return (log_probs.gather(-1, torch_tokens[:, 1:, None])[..., 0] * torch_weights).sum()

    def torch_forward() -> None:
        with torch.no_grad():
            torch_objective()

    def torch_backward() -> None:
        hf_model.zero_grad()
        torch_objective().backward()

    passes = {
        "jax forward": lambda: jax.block_until_ready(jax_forward(model.params)),
        "jax forward+backward": lambda: jax.block_until_ready(jax_grad(model.params)),
        "torch forward": torch_forward,
        "torch forward+backward": torch_backward,
    }
    times: dict[str, list[float]] = {name: [] for name in passes}
    for _ in range(8):  # the first is a warm-up (compilation, first allocations): not counted
        for name, run in passes.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: 1e3 * float(np.median(seconds[1:])) for name, seconds in times.items()}


def summary(rounds: list[dict], updates: int, completions: int) -> dict:
    """The median round (by seconds): seconds per update, tokens per second; sampling tokens per
    second, the median over rounds; tokens per completion and reward over every round."""
    median = sorted(rounds, key=lambda row: row["seconds"])[(len(rounds) - 1) // 2]
    return {
        "per_update": median["seconds"] / updates,
        "tokens_per_s": median["tokens"] / median["seconds"],
        "sampling_tokens_per_s": float(np.median([row["sampling_tokens"] / row["sampling_seconds"] for row in rounds])),
        "tokens_per_completion": sum(row["tokens"] for row in rounds) / (len(rounds) * updates * completions),
        "reward": float(np.mean([row["reward"] for row in rounds])),
    }


def main() -> None:
    args = parse_args()
    if "torch" in sys.modules:
        raise RuntimeError("torch was imported before OMP_WAIT_POLICY could be set")
    if args.omp_wait_policy != "unset":
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy.upper()  # read when torch loads OpenMP
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" bars
    # transformers 5.25 warns that TRL 1.16 reads its deprecated is_gradient_checkpointing: not ours to fix.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    env, env_params = jrl.make(ENV_ID, **ENV_KWARGS)
    key = jax.random.key(args.seed)
    k_model, k_prompts, k_train = jax.random.split(key, 3)
    model, channel = make_model(k_model, env, env_params, args.pretrain_steps)
    prompts = sample_prompts(k_prompts, env, env_params, args.prompts * (1 + args.updates))
    completions = args.prompts * args.group
    print(
        f"{ENV_ID} {ENV_KWARGS}: {args.prompts} prompts x G={args.group} = {completions} completions per update, "
        f"<= {MAX_COMPLETION} tokens each; {args.repeats} rounds of {args.updates} timed updates per library; "
        f"model: {model.config.num_layers} layers, width {model.config.d_model}, {model.config.num_heads} heads, "
        f"pretrained {args.pretrain_steps} steps by jrl"
    )
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "gpt2"
        write_hf_directory(directory, model, channel)
        difference = check_same_model(directory, model, prompts[:8])
        if difference > 1e-4:
            raise AssertionError(f"TRL's model is not jrl's: logits differ by up to {difference:.2e}")
        print(f"same model: largest |logit difference| jrl vs transformers on 8 prompts = {difference:.1e}")
        ours, theirs = JrlGRPO(args, env, env_params, model, k_train), TrlGRPO(args, directory, prompts, Path(tmp))
        jrl_rounds, trl_rounds = [], []
        # Rounds alternate the libraries, so that both meet the same load from other processes.
        for r in range(args.repeats):
            load = os.getloadavg()[0]
            jrl_rounds.append(ours.round(r))
            trl_rounds.append(theirs.round(r))
            a, b = jrl_rounds[-1]["seconds"] / args.updates, trl_rounds[-1]["seconds"] / args.updates
            print(f"round {r}: s / update jrl {a:.4f}, TRL {b:.4f} ({b / a:.1f}x); load average (1 min) {load:.1f}")
        print(
            f"same reward: the Python reward equals jrl's on each round's last sampled batch "
            f"({completions} completions, {ours.rewarded} rewarded in the last)"
        )
        passes = time_passes(model, directory, completions, jax.random.fold_in(k_train, 2))

    import torch

    rows = {"jrl grpo": summary(jrl_rounds, args.updates, completions)}
    rows["TRL GRPOTrainer"] = summary(trl_rounds, args.updates, completions)
    rows["jrl grpo"]["warmup"], rows["TRL GRPOTrainer"]["warmup"] = ours.compile_seconds, trl_rounds[0]["warmup"]
    header = ("library", "compile/warm-up s", "s / update", "tokens/s", "sampling tokens/s", "tokens/compl.", "reward")
    print(
        f"{header[0]:<17} {header[1]:>17} {header[2]:>10} {header[3]:>9} {header[4]:>17} {header[5]:>13} {header[6]:>6}"
    )
    for name, row in rows.items():
        print(
            f"{name:<17} {row['warmup']:>17.2f} {row['per_update']:>10.4f} {row['tokens_per_s']:>9,.0f} "
            f"{row['sampling_tokens_per_s']:>17,.0f} {row['tokens_per_completion']:>13.2f} {row['reward']:>6.3f}"
        )
    j, t = rows["jrl grpo"], rows["TRL GRPOTrainer"]
    print(
        f"{'TRL / jrl':<17} {'':>17} {t['per_update'] / j['per_update']:>9.1f}x "
        f"{j['tokens_per_s'] / t['tokens_per_s']:>8.1f}x {j['sampling_tokens_per_s'] / t['sampling_tokens_per_s']:>16.1f}x"
        "  (times: TRL's / jrl's; tokens/s: jrl's / TRL's)"
    )
    best_jrl = min(row["seconds"] for row in jrl_rounds) / args.updates
    best_trl = min(row["seconds"] for row in trl_rounds) / args.updates
    print(
        f"the table: each library's median round; best rounds: jrl {best_jrl:.4f}, TRL {best_trl:.4f} s / update "
        f"({best_trl / best_jrl:.1f}x)"
    )
    print(
        f"one pass over {completions} x {model.config.context_length} tokens, ms (median of 7): jrl/XLA forward "
        f"{passes['jax forward']:.1f}, forward+backward {passes['jax forward+backward']:.1f}; torch forward "
        f"{passes['torch forward']:.1f}, forward+backward {passes['torch forward+backward']:.1f}"
    )
    print(
        f"jax {jax.__version__} ({jax.devices()[0].platform}), torch {torch.__version__} "
        f"({torch.get_num_threads()} threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}), trl {metadata.version('trl')}, transformers "
        f"{metadata.version('transformers')}; {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
