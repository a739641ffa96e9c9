"""Per-program XLA options: the matmul-heavy programs compile without YNNPACK's dot fusions on CPU,
give the results the default compilation gives, and the environment switch restores the defaults."""

import jax
import jax.numpy as jnp
import numpy as np

from spgg_jax.parallel.xla_options import DEFAULTS_ENV, DENSE_CPU_OPTIONS, dense_jit, dense_options


def _matmul(a, b):
    return jnp.tanh(a @ b)


def test_dense_programs_compile_without_ynn_fusions_and_agree_with_the_defaults(monkeypatch):
    monkeypatch.delenv(DEFAULTS_ENV, raising=False)
    assert jax.default_backend() == "cpu" and dense_options() == DENSE_CPU_OPTIONS
    a = jax.random.normal(jax.random.key(0), (96, 64))
    b = jax.random.normal(jax.random.key(1), (64, 80))
    default = jax.jit(_matmul)
    dense = dense_jit(_matmul)
    ynn = '"__ynn_fusion"'  # YNNPACK's fusion kind in the compiled HLO (on this VM's CPU the default has them)
    by_default = ynn in default.lower(a, b).compile().as_text()
    assert ynn not in dense.lower(a, b).compile().as_text()
    np.testing.assert_allclose(dense(a, b), default(a, b), atol=1e-5)
    monkeypatch.setenv(DEFAULTS_ENV, "1")
    assert dense_options() is None
    assert (ynn in dense_jit(_matmul).lower(a, b).compile().as_text()) == by_default
