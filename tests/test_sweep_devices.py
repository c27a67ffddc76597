"""Several devices and processes give the numbers of one device, bit for bit: the one home of
these checks (sweeps on 4 devices, 2 processes and a SLURM launch; every environment's steps and
DQN's seeds sharded over 2 devices). ``jrl sweep --host-devices`` (the flag's own path):
test_sweep_cli.py.

JAX fixes its devices when it starts, so these checks run fresh interpreters that ask XLA for
several CPU host devices (``--xla_force_host_platform_device_count``), or that join a
``jax.distributed`` run of two local processes; the rest of the suite keeps its single device.
The children compile without a persistent cache: every program they run is compiled for the
device count they have.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from test_sweep import DQN, QL, compilation_cache_dir, run  # noqa: F401 (an autouse fixture)

import jrl

pytestmark = pytest.mark.slow

SOURCE = str(Path(jrl.__file__).resolve().parents[1])


def child_env(devices: int) -> dict:
    path = os.pathsep.join([SOURCE, *filter(None, [os.environ.get("PYTHONPATH")])])
    # Added to the XLA flags this process has, not in their place: a child compiled with other
    # flags (--xla_cpu_max_isa, say) would not be comparable bit for bit with this process.
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}".strip()
    return os.environ | {
        "XLA_FLAGS": flags,
        "JAX_PLATFORMS": "cpu",
        "PYTHONPATH": path,
    }


def start(code: str, devices: int, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=child_env(devices),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(children: list[subprocess.Popen], timeout: float = 400) -> list[str]:
    """Every child's stdout; on a failure or a timeout every child is killed and the test fails
    with their stderr."""
    outputs = []
    try:
        for child in children:
            out, err = child.communicate(timeout=timeout)
            assert child.returncode == 0, err[-4000:]
            outputs.append(out)
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.communicate()
    return outputs


def load(path: Path) -> dict:
    with np.load(path.with_suffix(".npz")) as data:
        numbers = {name: data[name] for name in data.files}
    numbers["rows"] = json.loads(path.with_suffix(".json").read_text())
    return numbers


def assert_same(numbers: dict, result) -> None:
    assert np.array_equal(numbers["final_returns"], result.final_returns, equal_nan=True)
    assert np.array_equal(numbers["curves"], result.curves, equal_nan=True)
    assert np.array_equal(numbers["diverged"], result.diverged)
    assert numbers["rows"] == result.rows


@pytest.fixture(scope="module", autouse=True)
def two_devices_child(request):
    """The child of the last two tests (one process of 2 devices), started with the module when
    either is selected: it compiles while the tests before them run (on a machine with two cores
    or more). ``report()`` waits for it and returns its report (read once, for both tests)."""
    names = {
        test_every_environment_steps_the_same_on_one_and_two_devices.__name__,
        test_seeds_sharded_over_two_devices.__name__,
    }
    if not any(item.name in names for item in request.session.items):
        yield None
        return
    child, reports = start(TWO_DEVICES, 2), []

    def report() -> dict:
        if not reports:
            (output,) = finish([child])
            reports.append(json.loads(output.strip().splitlines()[-1]))
        return reports[0]

    yield report
    if child.poll() is None:
        child.kill()
        child.communicate()


# -- 4 devices ------------------------------------------------------------------------------------

FOUR_DEVICES = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path

    import jax
    import numpy as np

    import jrl
    from jrl.experiment import SweepSettings

    assert jax.device_count() == 4
    out, cases = Path(sys.argv[1]), json.loads(sys.argv[2])
    settings = {
        "4": SweepSettings(),  # 9 or 6 members: padded to 12 or 8
        "4-batches-of-2": SweepSettings(configs_per_batch=2),  # batches of 6 and 3 members, padded to 8
        "1": SweepSettings(devices=1),
    }
    for name, kwargs in cases.items():
        for label, setting in settings.items():
            if name == "dqn" and label != "4":  # DQN compiles slowly: its 1-device reference is the parent's
                continue
            print(f"== {name} {label}", flush=True)
            result = jrl.sweep(**kwargs, settings=setting, progress=label == "4")
            stem = out / f"{name}-{label}"
            np.savez(stem.with_suffix(".npz"), final_returns=result.final_returns, curves=result.curves,
                     diverged=result.diverged)
            stem.with_suffix(".json").write_text(json.dumps(result.rows))
    """
)


def test_a_sweep_on_four_devices_is_the_one_device_sweep_bit_for_bit(tmp_path):
    """3 configurations x 3 seeds of Q-learning (one batch of 9 members padded to 12, and batches
    of 2 configurations padded to 8) and 3 x 2 of DQN on CartPole (6 padded to 8), against the
    same sweeps on this process's one device (and, for Q-learning, on one of the child's four)."""
    cases = {"q_learning": QL, "dqn": DQN}
    child = start(FOUR_DEVICES, 4, str(tmp_path), json.dumps(cases))
    references = {name: run(kwargs) for name, kwargs in cases.items()}  # while the child compiles
    (output,) = finish([child])
    assert "over 4 device(s)" in output
    for name, reference in references.items():
        labels = ["4", "4-batches-of-2", "1"] if name == "q_learning" else ["4"]
        for label in labels:
            assert_same(load(tmp_path / f"{name}-{label}"), reference)
        assert len(np.unique(reference.final_returns)) > 3  # members that differ


# -- 2 processes ----------------------------------------------------------------------------------

PROCESS = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path

    import jax

    process_id, port, out, kwargs = int(sys.argv[1]), sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{port}", num_processes=2, process_id=process_id, initialization_timeout=120
    )
    assert (jax.process_count(), jax.device_count(), jax.local_device_count()) == (2, 4, 2)

    import jrl
    from jrl.experiment import SweepSettings

    result = jrl.sweep(**kwargs, out=out, settings=SweepSettings(configs_per_batch=2), progress=False)
    rows = len(result.rows)
    # A batch file process 0 refuses on resuming stops every process (none waits for it).
    if process_id == 0:
        (Path(out) / "batches" / "batch-00001.npz").rename(Path(out) / "batch-00001.npz")
        (Path(out) / "batches" / "batch-00001.npz").write_bytes(b"not an npz")
    try:
        jrl.experiment.resume_sweep(out, progress=False)
    except jrl.experiment.SweepError as err:
        refused = str(err)
    if process_id == 0:
        (Path(out) / "batch-00001.npz").replace(Path(out) / "batches" / "batch-00001.npz")
    print(json.dumps({"rows": rows, "refused": refused}))
    jax.distributed.shutdown()
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_write_the_table_of_the_single_process_sweep(tmp_path):
    """Two local processes of 2 devices each (``jax.distributed``, CPU collectives): each trains
    its members, process 0 gathers them and writes results.csv and results.json, byte for byte
    those of the sweep in this process. Resuming it with a damaged batch file stops both
    processes with an error (not one waiting for the other in a collective: a timeout here)."""
    out, port = tmp_path / "two-processes", str(free_port())
    children = [start(PROCESS, 2, str(i), port, str(out), json.dumps(QL)) for i in range(2)]
    reference = run(QL, out=tmp_path / "one-process")
    outputs = finish(children, timeout=180)
    reports = [json.loads(o.strip().splitlines()[-1]) for o in outputs]
    assert [report["rows"] for report in reports] == [3, 0]  # process 0 tabulates
    assert "batch-00001.npz is not a readable batch file" in reports[0]["refused"]
    assert reports[1]["refused"] == "process 0 stopped the sweep (its error says why)"
    for name in ("results.csv", "results.json"):
        assert (out / name).read_bytes() == (reference.directory / name).read_bytes(), name
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["processes"] == 2 and len(metadata["sessions"]) == 1
    assert sorted(p.name for p in (out / "batches").iterdir()) == ["batch-00000.npz", "batch-00001.npz"]


def slurm_task(task: int, port: int) -> dict:
    """The variables ``srun`` gives task ``task`` of a 2-task, 1-node job: JAX's SLURM detection
    takes the coordinator's host from the node list and its port from the job id (61440 + id mod
    4096), the process count and id from ``SLURM_NTASKS`` and ``SLURM_PROCID``."""
    assert 61440 <= port <= 65535
    return {
        "SLURM_JOB_ID": str(port - 61440),
        "SLURM_STEP_NODELIST": "127.0.0.1",
        "SLURM_STEP_NUM_NODES": "1",
        "SLURM_NTASKS": "2",
        "SLURM_PROCID": str(task),
        "SLURM_LOCALID": str(task),
    }


def free_slurm_port() -> int:
    """A free port that a SLURM job id maps to (JAX picks it from the id, not the id from it)."""
    for port in range(61440 + os.getpid() % 4000, 65536):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 61440-65535")


# The fixed pieces of gloo's connection message ("[Gloo] Rank 1 is connected to 1 peer ranks.
# Expected number of connected peer ranks is : 1"), which it writes piece by piece.
GLOO_PIECES = ("[Gloo] Rank ", " is connected to ", " peer ranks. ", "Expected number of connected peer ranks is :")


def without_gloo(text: str) -> str:
    """``text`` with every piece of gloo's connection messages blanked (their numbers stay)."""
    for piece in GLOO_PIECES:
        text = text.replace(piece, " ")
    return text


def test_the_documented_slurm_launch_writes_the_table_of_the_single_process_sweep(tmp_path):
    """docs/sweeps.md's SLURM example, ``srun jrl sweep --config FILE --out DIR --distributed``, on
    this machine: two command-line processes that see only the variables ``srun`` sets (the
    coordinator on 127.0.0.1) find each other through ``jax.distributed``'s own SLURM detection,
    and process 0 writes the table of the sweep in this process, byte for byte."""
    lines = [
        f"algo = {QL['algo']!r}",
        f"env = {QL['env']!r}",
        f"seeds = {QL['seeds']}",
        f"threshold = {QL['threshold']}",
    ]
    lines += ["[config]", *(f"{k} = {v!r}" for k, v in QL["config"].items())]
    lines += ["[grid]", *(f"{k} = {v!r}" for k, v in QL["grid"].items())]
    sweep_file = tmp_path / "sweep.toml"
    sweep_file.write_text("\n".join(lines) + "\n")
    out, port = tmp_path / "slurm", free_slurm_port()
    command = [sys.executable, "-c", "from jrl.cli import entry_point; entry_point()", "sweep"]
    command += ["--config", str(sweep_file), "--out", str(out), "--distributed", "--configs-per-batch", "2"]
    children = [
        subprocess.Popen(command, env=child_env(2) | slurm_task(task, port), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for task in range(2)
    ]  # fmt: skip
    reference = run(QL, out=tmp_path / "one-process")
    outputs = finish(children)
    # Only process 0 prints. gloo (the CPU collectives) prints its connections on every rank, from
    # several threads, piece by piece: pieces of two of its lines can interleave anywhere (a lone
    # "3" on a line of its own has been seen), so process 1 may print gloo's pieces and numbers only.
    assert "over 4 device(s)" in outputs[0]
    assert re.fullmatch(r"[\d\s]*", without_gloo(outputs[1])), outputs[1]
    for name in ("results.csv", "results.json"):
        assert (out / name).read_bytes() == (reference.directory / name).read_bytes(), name
    assert json.loads((out / "metadata.json").read_text())["processes"] == 2


# -- 2 devices: every environment, and DQN's seeds ---------------------------------------------------

TWO_DEVICES = textwrap.dedent(
    """
    import json

    import jax
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    import jrl
    from jrl.algorithms import dqn

    # Enough transitions that a rare rounding difference shows: CartPole without rounded() in its
    # pole-mass term differed here with 4,096 for every key tried, and with 256 for some keys only.
    STEPS, PER_DEVICE = 64, 32
    assert jax.device_count() == 2


    def rollouts(env, params):
        # Reset, then STEPS steps with auto-reset, of one environment; vmapped over environments.
        def one(key, step_keys, actions):
            _, state = env.reset(key, params)

            def step(state, inputs):
                obs, state, reward, terminated, truncated, info = env.step(inputs[0], state, inputs[1], params)
                return state, (obs, reward, terminated, truncated, info["final_observation"])

            return jax.lax.scan(step, state, (step_keys, actions))[1]

        return jax.vmap(one)


    members = PartitionSpec("members")
    mesh = Mesh(np.array(jax.devices()), ("members",))
    report = {}
    # One program per environment, as a sweep compiles: what XLA fuses (and contracts into
    # fused multiply-adds) depends on the whole program.
    for i, env_id in enumerate(jrl.registered_envs()):
        env, params = jrl.make(env_id)
        keys = jax.random.split(jax.random.key(i), (3, 2 * PER_DEVICE, STEPS))
        sample = env.action_space(params).sample
        inputs = (keys[0, :, 0], keys[1], jax.vmap(jax.vmap(sample))(keys[2]))
        function = rollouts(env, params)
        two = jax.jit(jax.shard_map(function, mesh=mesh, in_specs=members, out_specs=members, check_vma=False))
        one = jax.jit(function)
        leaves = [np.asarray(x) for x in jax.tree.leaves(two(*inputs))]
        halves = [one(*(x[h * PER_DEVICE : (h + 1) * PER_DEVICE] for x in inputs)) for h in (0, 1)]
        alone = [np.concatenate([np.asarray(a), np.asarray(b)]) for a, b in zip(*map(jax.tree.leaves, halves))]
        report[env_id] = {
            "same": all(np.array_equal(a, b, equal_nan=True) for a, b in zip(leaves, alone)),
            "episodes_ended": int(np.sum(leaves[2] | leaves[3])),
            "distinct_observations": len(np.unique(leaves[0])),
        }

    # DQN's seeds sharded over the devices (docs/dqn.md, "Many seeds on one machine").
    env, params = jrl.make("Probe-TwoStep-v0")
    config = dqn.default_config("Probe-TwoStep-v0").replace(num_steps=400, log_interval=100, eval_episodes=0)
    train = dqn.make_train(config, env, params)
    seed_axis = NamedSharding(mesh, PartitionSpec("members"))
    keys = jax.random.split(jax.random.key(0), 4)
    sharded = jax.jit(jax.vmap(train), in_shardings=seed_axis)
    result = sharded(jax.device_put(keys, seed_axis))
    first = jax.tree.leaves(result)
    again = jax.tree.leaves(sharded(jax.device_put(keys, seed_axis)))
    # What each device computes on its own: the 1-device vmap of its two seeds.
    halves = [jax.tree.leaves(jax.jit(jax.vmap(train))(keys[i : i + 2])) for i in (0, 2)]

    def equal(a, b):
        return bool(np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True))

    seeds = {
        "result_devices": sorted(len(leaf.sharding.device_set) for leaf in first),
        "seeds": sorted({int(np.shape(leaf)[0]) for leaf in first}),
        "finite": all(bool(np.all(np.isfinite(np.asarray(leaf)))) for leaf in jax.tree.leaves(result.params)),
        "same_twice": all(equal(a, b) for a, b in zip(first, again)),
        "same_as_each_device_alone": all(
            equal(a, np.concatenate([np.asarray(h0), np.asarray(h1)])) for a, h0, h1 in zip(first, *halves)
        ),
    }
    print(json.dumps({"environments": report, "dqn_seeds": seeds}))
    """
)


def test_every_environment_steps_the_same_on_one_and_two_devices(two_devices_child):
    """Each registered environment, 64 environments x 64 random-action steps with auto-reset:
    sharded over 2 devices (``shard_map``, as a sweep runs) and compiled for 1 device on each half,
    the same observations, rewards, terminations and truncations bit for bit. (XLA contracts
    ``a * b + c`` into fused multiply-adds differently for one device and several: the reason
    for ``jrl._numerics.rounded`` in the physics of the classic-control environments.)"""
    report = two_devices_child()["environments"]
    assert sorted(report) == jrl.registered_envs()
    assert {env_id for env_id, r in report.items() if not r["same"]} == set()
    for env_id in ("CartPole-v1", "Acrobot-v1", "MountainCar-v0"):  # the physics: every step a new state
        assert report[env_id]["distinct_observations"] > 100, env_id
    assert sum(r["episodes_ended"] for r in report.values()) > 100


def test_seeds_sharded_over_two_devices(two_devices_child):
    """DQN's ``jit(vmap(train))`` over 4 seeds sharded over 2 devices (docs/dqn.md): every output
    split over both devices, the same numbers twice, and each device's seeds as the 1-device vmap
    of those two seeds gives them (sharding partitions the seeds and changes nothing else)."""
    report = two_devices_child()["dqn_seeds"]
    assert set(report["result_devices"]) == {2}  # every output is split over both devices
    assert report["seeds"] == [4]
    assert report["finite"]  # the parameters (the metrics hold NaN where nothing was evaluated)
    assert report["same_twice"]  # same keys, same sharding: bit-identical
    assert report["same_as_each_device_alone"]
