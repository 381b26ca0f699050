"""The C part of warren: optional, built when a compiler is there (pyproject.toml holds
the rest). Without it the same code runs in Python (protocol/reader.py)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "warren.protocol._framescan",
            ["protocol/_framescan.c"],
            optional=True,  # no compiler: install anyway, pure Python
            extra_compile_args=["-O2"],
        )
    ]
)
