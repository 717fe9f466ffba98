"""Build the compiled core.

``_native/*.c`` (our C99 kernels, no Python.h) is compiled once into the static library
``fcnative`` with warnings on; every ``flinkcore/_core/*.pyx`` becomes an extension module
linked against it, so adding a kernel or a binding never touches this file.
``FLINKCORE_DEBUG=1`` builds everything with -O0 -g and AddressSanitizer/UBSan instead of -O3.
"""

import glob
import os

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("FLINKCORE_DEBUG", "") not in ("", "0")

if os.name == "nt":
    opt, sanitize, warn = ["/O2"], [], []
elif DEBUG:
    opt = ["-O0", "-g", "-fno-omit-frame-pointer"]
    sanitize = ["-fsanitize=address,undefined"]
    warn = ["-Wall", "-Wextra"]
else:
    opt, sanitize, warn = ["-O3"], [], ["-Wall", "-Wextra"]

native = (
    "fcnative",
    {
        "sources": sorted(glob.glob("_native/*.c")),
        "include_dirs": ["_native"],
        "cflags": opt + sanitize + warn + ([] if os.name == "nt" else ["-std=c99", "-fPIC"]),
    },
)

extensions = [
    Extension(
        "flinkcore._core.*",
        ["flinkcore/_core/*.pyx"],
        include_dirs=["_native", numpy.get_include()],
        # relink when a kernel changes: the static library is not a source setuptools tracks
        depends=sorted(glob.glob("_native/*.[ch]")),
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=opt + sanitize,
        extra_link_args=sanitize,
    )
]

setup(
    libraries=[native],
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
    ),
)
