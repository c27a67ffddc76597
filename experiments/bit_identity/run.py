"""Before/after identity check: what users get from the `jrl` command, digested.

Runs a few short runs through `python -m jrl.cli` (the jrl that this interpreter imports, so
`PYTHONPATH=/path/to/other/checkout` checks another copy of the code), then writes one line per
digest: ``NAME  SHA256``. Two digest files from two versions of the code must be equal line for
line; ``--compare A B`` says which lines differ and exits with status 1 if any does.

    python experiments/bit_identity/run.py OUT               # runs into OUT/, digests to OUT/digests.txt
    python experiments/bit_identity/run.py --compare A B     # exit 1 on any difference

What is digested (volatile fields, those naming times, versions, paths, the machine, dropped):

- each run's ``config.toml``, ``metrics.jsonl``, ``summary.json`` (whole file, and per field over
  every seed, so that a difference is named), and the sha256 of every leaf of its final checkpoint
  (as a sorted list: a renamed state field keeps its digest, a changed number does not);
- ``jrl eval``'s and ``jrl generate``'s printed output;
- a sweep's ``results.csv`` and ``results.json`` (whole, and per column / field);
- the pretrained language model's ``model.safetensors`` and ``config.json``;
- the Markdown tables (lines starting with ``|``) of ``docs/*.md``, ``README.md`` and the
  experiments' READMEs, and the recorded result files (``experiments/**/*.csv``, ``*.json``) of the
  checkout the imported jrl comes from.

Takes about three minutes on 2 CPU cores, most of it compiling.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

#: JSON keys whose values change from run to run, machine to machine or checkout to checkout.
VOLATILE = re.compile(
    r"(time|seconds|date|created|started|finished|version|platform|processor|machine|host|path|"
    r"commit|dirty|command|argv|cwd|devices|backend|sessions)",
    re.IGNORECASE,
)


#: ``(name, arguments of the jrl command)``, run in this order in OUT.
RUNS = [
    # Tabular Q-learning on FrozenLake, 3 seeds, with in-loop evaluation.
    (
        "q_learning",
        "train --env FrozenLake-v1 --algo q_learning --seeds 3 --set num_envs=64 --set num_steps=400 --set eval_episodes=8 --chunk-logs 25 --eval-episodes 50 --out {out} --quiet",
    ),
    # Double Q-learning on the cliff (a second tabular update rule, two tables).
    (
        "double_q_learning",
        "train --env CliffWalking-v1 --algo double_q_learning --seeds 2 --set num_envs=16 --set num_steps=300 --eval-episodes 20 --out {out} --quiet",
    ),
    # DQN on CartPole from the tuned default, short, with in-loop evaluation.
    (
        "dqn",
        "train --env CartPole-v1 --algo dqn --seeds 2 --set num_steps=1200 --set learning_starts=200 --set log_interval=100 --set eval_episodes=4 --eval-episodes 10 --out {out} --quiet",
    ),
    # DQN's other paths: n-step returns, dueling, no double DQN, an annealed learning rate, soft
    # target updates, keep_best, and an early stop that a seed reaches.
    (
        "dqn_variant",
        "train --env CartPole-v1 --algo dqn --seeds 2 --set num_steps=1000 --set learning_starts=100 --set log_interval=50 --set n_step=3 --set dueling=true --set double_dqn=false --set anneal_lr=true --set tau=0.05 --set eval_episodes=4 --set stop_return=25 --set keep_best=true --eval-episodes 10 --out {out} --quiet",
    ),
    (
        "dqn_eval",
        "eval {dqn} --episodes 20",
    ),
    # A tiny language model, then text Q-learning on top of it, then decoding.
    (
        "lm",
        "pretrain --env GraphWalkText-v0 --out {out} --seed 0 --set num_steps=40 --set batch_size=32 --set d_model=16 --set num_layers=1 --set num_heads=2 --set mlp_ratio=2",
    ),
    (
        "text",
        "train --env GraphWalkText-v0 --algo text_q_learning --seeds 2 --set pretrained={lm} --set num_envs=16 --set num_steps=12 --set log_interval=2 --set eval_episodes=4 --eval-episodes 10 --out {out} --quiet",
    ),
    (
        "text_generate",
        "generate {text} --prompt 3 --prompt 7 --num-samples 3 --seed 0",
    ),
    # The sweep of docs/sweeps.md (its printed best row is in the docs), and a small DQN sweep.
    (
        "sweep",
        "sweep --env FrozenLake-v1 --algo q_learning --set num_envs=16 --set num_steps=200 --grid alpha=0.1,0.5 --grid gamma=0.9,0.99 --seeds 3 --threshold 0.3 --out {out}",
    ),
    (
        "sweep_dqn",
        "sweep --env CartPole-v1 --algo dqn --set num_steps=600 --set learning_starts=100 --set log_interval=100 --set eval_episodes=4 --grid tau=0.05,1 --seeds 2 --eval-episodes 10 --out {out}",
    ),
]


def runs() -> list[tuple[str, list[str]]]:
    """``(name, jrl arguments)`` in order; ``{out}`` is the run's directory under OUT, ``{NAME}`` that
    of an earlier run."""
    return [(name, args.split()) for name, args in RUNS]


def sha(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, allow_nan=True)


def strip_volatile(value: object) -> object:
    """``value`` without the keys ``VOLATILE`` matches, at any depth."""
    if isinstance(value, dict):
        return {k: strip_volatile(v) for k, v in value.items() if not VOLATILE.search(k)}
    if isinstance(value, list):
        return [strip_volatile(v) for v in value]
    return value


def flatten(value: object, prefix: str = "") -> list[tuple[str, object]]:
    """``(field, leaf)`` pairs, where a field is the path with numeric parts (seeds, list
    indices, rows) dropped: the values of one field over every seed or row share one name."""
    if isinstance(value, dict):
        out = []
        for k, v in value.items():
            part = "#" if re.fullmatch(r"-?\d+", str(k)) else str(k)
            out += flatten(v, f"{prefix}.{part}" if prefix else part)
        return out
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        out = []
        for v in value:
            out += flatten(v, prefix + ".#" if prefix else "#")
        return out
    return [(prefix, value)]


def per_field(name: str, items: list[tuple[str, object]]) -> dict[str, str]:
    fields: dict[str, list] = {}
    for field, leaf in items:
        fields.setdefault(field, []).append(leaf)
    return {f"{name}:{field}": sha(canonical(values)) for field, values in sorted(fields.items())}


def digest_json(name: str, path: Path, volatile: bool = False) -> dict[str, str]:
    data = json.loads(path.read_text())
    if volatile:
        data = strip_volatile(data)
        out = {name: sha(canonical(data))}
    else:
        out = {name: sha(path.read_bytes())}
    return out | per_field(name, flatten(data))


def digest_jsonl(name: str, path: Path) -> dict[str, str]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {name: sha(path.read_bytes())} | per_field(name, [(k, v) for row in rows for k, v in row.items()])


def digest_csv(name: str, path: Path) -> dict[str, str]:
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    return {name: sha(path.read_bytes())} | per_field(name, [(k, v) for row in rows for k, v in row.items()])


def digest_checkpoint(name: str, run_dir: Path) -> dict[str, str]:
    """The final checkpoint's leaves: the sorted list of (dtype, shape, sha256)."""
    found = sorted((run_dir / "checkpoints").glob("ckpt-*"))
    if not found:
        return {}
    header = json.loads((found[-1] / "header.json").read_text())
    leaves = sorted(canonical([leaf.get("dtype"), leaf.get("shape"), leaf.get("sha256")]) for leaf in header["leaves"])
    return {
        f"{name}:checkpoint_leaves": sha("\n".join(leaves)),
        f"{name}:checkpoint_log_index": sha(str(header["log_index"])),
    }


def digest_run(name: str, run_dir: Path) -> dict[str, str]:
    out = {
        f"{name}/config.toml": sha(
            re.sub(r"(?m)^pretrained = .*$", "pretrained = <input>", (run_dir / "config.toml").read_text())
        )
    }
    out |= digest_jsonl(f"{name}/metrics.jsonl", run_dir / "metrics.jsonl")
    out |= digest_json(f"{name}/summary.json", run_dir / "summary.json")
    return out | digest_checkpoint(name, run_dir)


def digest_output(name: str, text: str) -> dict[str, str]:
    """Printed output, without lines that report times or rates."""
    keep = [line.rstrip() for line in text.splitlines() if not re.search(r"(\bs\b|/s|seconds|ETA|compil)", line)]
    return {f"{name}/stdout": sha("\n".join(keep))}


def digest_repository(root: Path) -> dict[str, str]:
    """Markdown tables of the docs and READMEs, and the recorded result files, of ``root``."""
    out = {}
    pages = [*sorted(root.glob("docs/*.md")), root / "README.md", *sorted(root.glob("experiments/**/README.md"))]
    for page in pages:
        if page.is_file():
            tables = [line.rstrip() for line in page.read_text().splitlines() if line.lstrip().startswith("|")]
            out[f"tables:{page.relative_to(root)}"] = sha("\n".join(tables))
    for path in sorted(root.glob("experiments/**/*")):
        if path.suffix in (".csv", ".json") and path.is_file():
            out[f"recorded:{path.relative_to(root)}"] = sha(path.read_bytes())
    return out


def jrl_cli(args: list[str], cwd: Path, log: Path) -> str:
    """Run ``python -m jrl.cli ARGS`` in ``cwd``; its stdout (stderr goes to ``log`` too)."""
    env = dict(os.environ, JRL_DEBUG="1", COLUMNS="200")
    proc = subprocess.run([sys.executable, "-m", "jrl.cli", *args], cwd=cwd, env=env, capture_output=True, text=True)
    log.write_text(f"$ jrl {' '.join(args)}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    if proc.returncode != 0:
        raise SystemExit(f"jrl {' '.join(args)} exited with status {proc.returncode}; see {log}")
    return proc.stdout


def produce(out: Path) -> dict[str, str]:
    import jrl

    out.mkdir(parents=True, exist_ok=False)
    (out / "logs").mkdir()
    print(f"# jrl from {jrl.__file__}", file=sys.stderr)
    digests: dict[str, str] = {}
    dirs = {}
    for name, args in runs():
        dirs[name] = name
        args = [a.format(out=name, **dirs) for a in args]
        start = time.perf_counter()
        stdout = jrl_cli(args, out, out / "logs" / f"{name}.txt")
        print(f"# {name}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
        if args[0] == "train":
            digests |= digest_run(name, out / name)
        elif args[0] == "pretrain":
            digests[f"{name}/model.safetensors"] = sha((out / name / "model.safetensors").read_bytes())
            digests |= digest_json(f"{name}/config.json", out / name / "config.json", volatile=True)
        elif args[0] == "sweep":
            digests |= digest_csv(f"{name}/results.csv", out / name / "results.csv")
            digests |= digest_json(f"{name}/results.json", out / name / "results.json", volatile=True)
            digests |= digest_output(name, stdout)
        else:
            digests |= digest_output(name, stdout)
    root = Path(jrl.__file__).resolve().parents[1]
    return digests | digest_repository(root)


def read_digests(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(maxsplit=1)
            out[name] = value
    return out


def compare(a: Path, b: Path) -> int:
    """Print the differences between two digest files; 1 if there is any, else 0."""
    before, after = read_digests(a), read_digests(b)
    changed = sorted(k for k in before.keys() & after.keys() if before[k] != after[k])
    # A page without tables on one side only (a new page, say) is no difference.
    missing = sorted(k for k in before.keys() - after.keys() if before[k] != sha(""))
    added = sorted(k for k in after.keys() - before.keys() if after[k] != sha(""))
    for title, names in (("changed", changed), ("only in " + str(a), missing), ("only in " + str(b), added)):
        for name in names:
            print(f"{title}: {name}")
    same = len(before.keys() & after.keys()) - len(changed)
    print(f"{same} digest(s) equal, {len(changed)} changed, {len(missing)} only before, {len(added)} only after")
    return 1 if changed or missing or added else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", type=Path, help="a new directory for the runs")
    parser.add_argument("--digests", type=Path, help="where to write the digests (default OUT/digests.txt)")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"), help="compare two digest files")
    args = parser.parse_args()
    if args.compare:
        return compare(*args.compare)
    if args.out is None:
        parser.error("give OUT, or --compare A B")
    digests = produce(args.out.resolve())
    text = "".join(f"{name}  {value}\n" for name, value in digests.items())
    (args.digests or args.out / "digests.txt").write_text(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
