"""Seeds sharded over several devices (docs/dqn.md, "Many seeds on one machine").

JAX fixes its devices when it starts, so the check runs in a fresh interpreter that asks XLA for
two CPU host devices; the rest of the suite keeps its single device.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

CHILD = textwrap.dedent(
    """
    import json

    import jax
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    import jrl
    from jrl.algorithms import dqn

    env, params = jrl.make("Probe-TwoStep-v0")
    config = dqn.default_config("Probe-TwoStep-v0").replace(num_steps=400, log_interval=100, eval_episodes=0)
    train = dqn.make_train(config, env, params)
    seed_axis = NamedSharding(Mesh(np.array(jax.devices()), ("seeds",)), PartitionSpec("seeds"))
    keys = jax.random.split(jax.random.key(0), 4)
    sharded = jax.jit(jax.vmap(train), in_shardings=seed_axis)
    result = sharded(jax.device_put(keys, seed_axis))
    first = jax.tree.leaves(result)
    again = jax.tree.leaves(sharded(jax.device_put(keys, seed_axis)))
    # What each device computes on its own: the 1-device vmap of its two seeds.
    halves = [jax.tree.leaves(jax.jit(jax.vmap(train))(keys[i : i + 2])) for i in (0, 2)]

    def equal(a, b):
        return bool(np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True))

    print(json.dumps({
        "devices": jax.device_count(),
        "result_devices": sorted(len(leaf.sharding.device_set) for leaf in first),
        "seeds": sorted({int(np.shape(leaf)[0]) for leaf in first}),
        "finite": all(bool(np.all(np.isfinite(np.asarray(leaf)))) for leaf in jax.tree.leaves(result.params)),
        "same_twice": all(equal(a, b) for a, b in zip(first, again)),
        "same_as_each_device_alone": all(
            equal(a, np.concatenate([np.asarray(h0), np.asarray(h1)])) for a, h0, h1 in zip(first, *halves)
        ),
    }))
    """
)


def test_seeds_sharded_over_two_host_devices_equal_each_devices_seeds_trained_alone():
    # Added to this process's XLA flags (not in their place): the child's numbers are compared with its.
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2".strip()
    env = os.environ | {"XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"}
    child = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=300)
    assert child.returncode == 0, child.stderr[-3000:]
    report = json.loads(child.stdout.strip().splitlines()[-1])
    assert report["devices"] == 2
    assert set(report["result_devices"]) == {2}  # every output is split over both devices
    assert report["seeds"] == [4]
    assert report["finite"]  # the parameters (the metrics hold NaN where nothing was evaluated)
    assert report["same_twice"]  # same keys, same sharding: bit-identical
    assert report["same_as_each_device_alone"]  # sharding partitions the seeds, and changes nothing else
