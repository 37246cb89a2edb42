"""Builds Engram's compiled kernels (Cython + C).

A failed compile is an error: we never install a silently slower package. Set
ENGRAM_PURE=1 at build time to skip the extensions on a machine without a C
compiler; the package then runs on the NumPy twins in engram/_core/_ref.py.
"""

import os
import sys

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

# No fast-math and no fused multiply-add anywhere: kernel results are compared
# bit for bit with their twins and across machines.
COMPILE_ARGS = ["-O3", "-fno-fast-math", "-ffp-contract=off", "-Wno-unused-function"]

extensions = []
if os.environ.get("ENGRAM_PURE") != "1":
    if not sys.platform.startswith("linux") and not sys.platform == "darwin":
        raise SystemExit("engram: the kernels build with gcc or clang; set ENGRAM_PURE=1 to install without them")
    extensions = cythonize(
        [
            Extension(
                "engram._core._walcodec",
                ["engram/_core/_walcodec.pyx"],
                include_dirs=["engram/_core"],
                extra_compile_args=COMPILE_ARGS,
            ),
            Extension(
                "engram._core._dedup",
                ["engram/_core/_dedup.pyx"],
                include_dirs=["engram/_core", numpy.get_include()],
                extra_compile_args=COMPILE_ARGS,
            ),
            Extension(
                "engram._core._store",
                ["engram/_core/_store.pyx"],
                include_dirs=["engram/_core", numpy.get_include()],
                extra_compile_args=COMPILE_ARGS,
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            ),
            Extension(
                "engram._core._json",
                ["engram/_core/_json.pyx"],
                include_dirs=["engram/_core", numpy.get_include()],
                extra_compile_args=COMPILE_ARGS,
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            ),
            Extension(
                "engram._core._scan",
                ["engram/_core/_scan.pyx"],
                include_dirs=["engram/_core", numpy.get_include()],
                extra_compile_args=COMPILE_ARGS + ["-fopenmp"],
                extra_link_args=["-fopenmp"],
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            ),
            Extension(
                "engram._core._linkage",
                ["engram/_core/_linkage.pyx"],
                include_dirs=["engram/_core", numpy.get_include()],
                extra_compile_args=COMPILE_ARGS + ["-fopenmp"],
                extra_link_args=["-fopenmp"],
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            ),
        ],
        compiler_directives={"language_level": "3"},
    )

setup(ext_modules=extensions)
