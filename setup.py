"""Builds the GIL-free scanners. The RADOS ones are built only where librados-dev is
installed, so a filed-only install works on a machine without Ceph's libraries."""

import os

from Cython.Build import cythonize
from setuptools import Extension, setup

WARN = ["-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-unused-function", "-Wno-deprecated-declarations"]
NATIVE = "verify/native"  # the loops, and the .pxd declarations and C headers they share
SHARED = [f"{NATIVE}/{f}" for f in ("_rules.h", "_rules.pxd", "_native.h", "_native.pxd", "_sys.pxd")]
WALK = [f"{NATIVE}/_walk.h", f"{NATIVE}/_walk.pxd"]
OPENMP = {"extra_compile_args": ["-O2", "-fopenmp", *WARN], "extra_link_args": ["-fopenmp"]}


def native(module, depends=(), libraries=("crypto",), **kw):
    """One extension module of verify/native/ (or the filed scanner at verify/_scan.pyx)."""
    kw.setdefault("extra_compile_args", ["-O2", *WARN])
    source = module.replace(".", "/") + ".pyx"
    return Extension(module, [source], include_dirs=[NATIVE], depends=list(depends), libraries=list(libraries), **kw)


extensions = [
    native("verify._scan", SHARED + WALK, **OPENMP),
    # the reference check: the filed passes (_check) and their per-file rules (_filedpass), the RADOS
    # reference index (_refindex), the entry rules and sets both share (_refsets), the rules as batches
    *(native(f"verify.native.{name}", SHARED + WALK + [f"{NATIVE}/{f}" for f in ("_check.h", "_refsets.pxd",
                                                                                  "_filedpass.pxd")], **OPENMP)
      for name in ("_refsets", "_filedpass", "_check", "_refindex", "_rulebatch")),
    native("verify.native._refjoin", libraries=()),
    native("verify.native._probe", SHARED),
]

if os.path.exists("/usr/include/rados/librados.h") and os.environ.get("ARCHVERIFY_NO_RADOS") != "1":
    # the client and the listing (_rados), the aio scan loop (_radoscan) and its Python face
    # (_radoshard), the check's pool I/O (_radosread)
    extensions += [native(f"verify.native.{name}", SHARED[:4] + [f"{NATIVE}/{f}" for f in (
        "_librados.pxd", "_rados.pxd", "_radoscan.pxd")], libraries=("rados", "crypto"))
        for name in ("_rados", "_radoscan", "_radoshard", "_radosread")]

extensions = [e for e in extensions if os.path.exists(e.sources[0])]

setup(ext_modules=cythonize(extensions, compiler_directives={"language_level": "3"}))
