"""Build configuration beyond pyproject.toml: the optional C accelerators.

``datamove.anonymize._native`` computes keyed hashes over Arrow buffers with
OpenSSL's SHA-256. It needs a C compiler and OpenSSL's headers (Debian:
``libssl-dev``); where either is missing the build skips it and datamove
uses its pure-Python path, with the same results, more slowly.

``datamove._textscan`` counts quote characters and newlines for the planner,
which reads a large CSV file up to its last cut to find where it can be cut
outside quoted fields. It needs only a C compiler; without it the planner
counts with ``bytes.count``, with the same cuts, several times more slowly.
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
        ),
        Extension(
            "datamove._textscan",
            sources=["datamove/_textscan.c"],
            extra_compile_args=["-O3"],
            optional=True,
        ),
    ]
)
