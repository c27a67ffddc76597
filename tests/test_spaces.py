"""Tests of jrl.spaces: Discrete and Box."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jrl.spaces import Box, Discrete

NUM_SAMPLES = 30_000


def _samples(space, num=NUM_SAMPLES, seed=0):
    """``num`` samples and whether ``contains`` accepts each, from one compiled call."""

    def draw(key):
        x = jax.vmap(space.sample)(jax.random.split(key, num))
        return x, jax.vmap(space.contains)(x)

    x, ok = jax.jit(draw)(jax.random.key(seed))
    assert x.shape == (num, *space.shape) and x.dtype == space.dtype
    assert ok.shape == (num,) and bool(np.all(ok))
    return np.asarray(x)


# ------------------------------------------------------------------------------------------------
# Discrete
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 7])
def test_discrete_sample_in_range_and_uniform(n):
    space = Discrete(n)
    one = jax.eval_shape(space.sample, jax.random.key(1))
    assert one.shape == () and one.dtype == jnp.int32
    x = _samples(space)
    assert x.dtype == np.int32
    assert x.min() >= 0 and x.max() < n
    counts = np.bincount(x, minlength=n)
    assert counts.size == n
    # Every value within 5 standard errors of 1/n.
    p = 1.0 / n
    tol = 5 * np.sqrt(p * (1 - p) / NUM_SAMPLES) + 1e-12
    assert np.all(np.abs(counts / NUM_SAMPLES - p) <= tol), counts


def test_discrete_attributes():
    space = Discrete(5)
    assert space.n == 5 and space.shape == () and space.dtype == jnp.int32
    assert Discrete(5) == Discrete(5) and Discrete(5) != Discrete(6)


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        (0, True),
        (4, True),
        (np.int64(3), True),
        (jnp.int32(2), True),
        (-1, False),
        (5, False),
        (100, False),
        (1.5, False),
        (jnp.float32(-0.5), False),
        (np.array([1]), False),
        (jnp.zeros((2, 2), jnp.int32), False),
    ],
)
def test_discrete_contains(x, expected):
    space = Discrete(5)
    result = space.contains(x)
    assert jnp.shape(result) == () and jnp.asarray(result).dtype == jnp.bool_
    assert bool(result) is expected


def test_discrete_contains_under_jit_and_vmap():
    space = Discrete(5)
    xs = jnp.array([-1, 0, 2, 4, 5, 9], jnp.int32)
    np.testing.assert_array_equal(jax.jit(jax.vmap(space.contains))(xs), [False, True, True, True, False, False])


@pytest.mark.parametrize("x", [0, 3, np.int32(4), jnp.int32(1), 2.0])
def test_discrete_check_accepts_elements(x):
    Discrete(5).check(x)


@pytest.mark.parametrize("x", [5, -1, 17])
def test_discrete_check_out_of_range(x):
    with pytest.raises(ValueError) as err:
        Discrete(5).check(x, "action")
    assert str(x) in str(err.value) and "action" in str(err.value)


def test_discrete_check_non_integer_and_shape():
    with pytest.raises(ValueError) as err:
        Discrete(5).check(1.5)
    assert "1.5" in str(err.value)
    with pytest.raises(ValueError):
        Discrete(5).check(np.array([1, 2]))


@pytest.mark.parametrize("x", ["a", "3", None])
def test_discrete_check_type_error(x):
    with pytest.raises(TypeError):
        Discrete(5).check(x)


@pytest.mark.parametrize("n", [0, -3, 2.5, True])
def test_discrete_bad_n(n):
    with pytest.raises(ValueError):
        Discrete(n)


# ------------------------------------------------------------------------------------------------
# Box
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def box():
    return Box(low=np.array([-1.0, 0.0, 2.0]), high=np.array([1.0, 0.5, 3.0]), shape=(3,))


def test_box_attributes(box):
    assert box.shape == (3,) and box.dtype == jnp.float32
    np.testing.assert_array_equal(box.low, [-1.0, 0.0, 2.0])
    np.testing.assert_array_equal(box.high, [1.0, 0.5, 3.0])
    scalar_bounds = Box(low=-2, high=2, shape=(2, 3))
    assert np.shape(scalar_bounds.low) == (2, 3) and np.all(scalar_bounds.high == 2)


def test_box_sample_within_bounds(box):
    one = jax.eval_shape(box.sample, jax.random.key(0))
    assert one.shape == (3,) and one.dtype == jnp.float32
    x = _samples(box, num=5_000)
    assert x.shape == (5_000, 3)
    assert np.all(x >= box.low) and np.all(x <= box.high)
    # Uniform over each interval: mean at the midpoint (5 standard errors of a uniform's mean).
    width = box.high - box.low
    tol = 5 * width / np.sqrt(12 * 5_000)
    assert np.all(np.abs(x.mean(0) - (box.low + box.high) / 2) <= tol)
    assert np.all(x.std(0) > 0.2 * width)


def test_box_sample_unbounded_and_half_bounded():
    space = Box(low=np.array([-np.inf, 0.0]), high=np.array([np.inf, np.inf]), shape=(2,))
    x = _samples(space, num=2_000)
    assert np.all(np.isfinite(x))
    assert np.all(x[:, 1] >= 0.0)
    assert x[:, 0].min() < 0 < x[:, 0].max()


def test_box_int_dtype_is_refused_or_samples_ints():
    # A Box built with an integer dtype must either be refused at construction or sample its dtype.
    try:
        space = Box(low=0, high=10, shape=(4,), dtype=jnp.int32)
    except (TypeError, ValueError):
        return
    x = space.sample(jax.random.key(0))
    assert x.shape == (4,) and x.dtype == jnp.int32
    assert bool(space.contains(x))


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        ([0.0, 0.25, 2.5], True),
        ([-1.0, 0.0, 2.0], True),  # closed bounds
        ([1.0, 0.5, 3.0], True),
        ([1.01, 0.25, 2.5], False),
        ([0.0, -0.001, 2.5], False),
        ([0.0, 0.25, 3.5], False),
        ([0.0, 0.25], False),
        ([[0.0, 0.25, 2.5]], False),
        (0.0, False),
    ],
)
def test_box_contains(box, x, expected):
    result = box.contains(jnp.asarray(x, jnp.float32))
    assert jnp.shape(result) == ()
    assert bool(result) is expected


def test_box_check(box):
    box.check(np.array([0.0, 0.25, 2.5]))
    with pytest.raises(ValueError) as err:
        box.check(np.array([0.0, 0.25]), "obs")
    assert "obs" in str(err.value) and "shape" in str(err.value)
    with pytest.raises(ValueError) as err:
        box.check(np.array([0.0, 0.25, 9.0]), "obs")
    assert "obs" in str(err.value)
    with pytest.raises(TypeError):
        box.check("abc")


def test_box_low_above_high():
    with pytest.raises(ValueError):
        Box(low=np.array([0.0, 2.0]), high=np.array([1.0, 1.0]), shape=(2,))
