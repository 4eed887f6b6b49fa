"""Build configuration beyond pyproject.toml: the optional C accelerator.

``datamove.anonymize._native`` computes keyed hashes over Arrow buffers with
OpenSSL's SHA-256. It needs a C compiler and OpenSSL's headers (Debian:
``libssl-dev``); where either is missing the build skips it and datamove
uses its pure-Python path, with the same results, more slowly.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "datamove.anonymize._native",
            sources=["datamove/anonymize/_native.c"],
            libraries=["crypto"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ]
)
