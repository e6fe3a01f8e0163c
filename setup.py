"""Builds the GIL-free scanners. The RADOS one is built only where librados-dev is
installed, so a filed-only install works on a machine without Ceph's libraries."""

import os

from Cython.Build import cythonize
from setuptools import Extension, setup

WARN = ["-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-unused-function", "-Wno-deprecated-declarations"]

extensions = [
    Extension(
        "verify._scan",
        ["verify/_scan.pyx"],
        include_dirs=["verify"],
        depends=["verify/_rules.h", "verify/_rules.pxd", "verify/_native.h", "verify/_native.pxd", "verify/_sys.pxd",
                 "verify/_walk.h", "verify/_walk.pxd"],
        libraries=["crypto"],
        extra_compile_args=["-O2", "-fopenmp", *WARN],
        extra_link_args=["-fopenmp"],
    ),
    # the reference check: the filed passes (_check) and their per-file rules (_filedpass), the RADOS
    # reference index (_refindex), the entry rules and sets both share (_refsets), the rules as batches
    *(Extension(
        f"verify.{name}",
        [f"verify/{name}.pyx"],
        include_dirs=["verify"],
        depends=["verify/_rules.h", "verify/_rules.pxd", "verify/_native.h", "verify/_native.pxd", "verify/_sys.pxd",
                 "verify/_check.h", "verify/_walk.h", "verify/_walk.pxd", "verify/_refsets.pxd",
                 "verify/_filedpass.pxd"],
        libraries=["crypto"],
        extra_compile_args=["-O2", "-fopenmp", *WARN],
        extra_link_args=["-fopenmp"],
    ) for name in ("_refsets", "_filedpass", "_check", "_refindex", "_rulebatch")),
    Extension("verify._refjoin", ["verify/_refjoin.pyx"], extra_compile_args=["-O2", *WARN]),
    Extension(
        "verify._probe",
        ["verify/_probe.pyx"],
        include_dirs=["verify"],
        depends=["verify/_rules.h", "verify/_rules.pxd", "verify/_native.h", "verify/_native.pxd", "verify/_sys.pxd"],
        libraries=["crypto"],
        extra_compile_args=["-O2", *WARN],
    ),
]

if os.path.exists("/usr/include/rados/librados.h") and os.environ.get("ARCHVERIFY_NO_RADOS") != "1":
    # the client and the listing (_rados), the aio scan loop (_radoscan) and its Python face
    # (_radoshard), the check's pool I/O (_radosread)
    extensions += [Extension(
        f"verify.{name}",
        [f"verify/{name}.pyx"],
        include_dirs=["verify"],
        depends=["verify/_rules.h", "verify/_rules.pxd", "verify/_native.h", "verify/_native.pxd",
                 "verify/_librados.pxd", "verify/_rados.pxd", "verify/_radoscan.pxd"],
        libraries=["rados", "crypto"],
        extra_compile_args=["-O2", *WARN],
    ) for name in ("_rados", "_radoscan", "_radoshard", "_radosread")]

extensions = [e for e in extensions if os.path.exists(e.sources[0])]

setup(ext_modules=cythonize(extensions, compiler_directives={"language_level": "3"}))
