"""Build of the libesp Python package: compiles libesp.so.0 from its C++ sources
into the package (esp/_lib/), so a wheel carries its own libesp; the version is
read from include/esp.h. The sources are csrc/ in an sdist (copied from the tree
when the sdist is made) or the repository's src/ in a checkout.
"""

import os
import pathlib
import re
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist
from setuptools.dist import Distribution

try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools < 70.1
    from wheel.bdist_wheel import bdist_wheel

HERE = pathlib.Path(__file__).parent.resolve()
BUNDLED = HERE / "csrc"
TREE = HERE.parent.parent


def source_root() -> pathlib.Path:
    for root in (BUNDLED, TREE):
        if (root / "include" / "esp.h").is_file() and (root / "src").is_dir():
            return root
    raise SystemExit(f"libesp's sources are missing: neither {BUNDLED} nor {TREE} holds include/esp.h and src/")


def header_version() -> str:
    header = (source_root() / "include" / "esp.h").read_text()
    return ".".join(
        re.search(rf"^#define ESP_VERSION_{part} (\d+)$", header, re.M).group(1)
        for part in ("MAJOR", "MINOR", "PATCH")
    )


class BuildPyWithLibesp(build_py):
    """Also builds libesp.so.0 into esp/_lib/. Editable installs skip it: they
    are for working on this tree, where the tests load build/libesp.so."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        root = source_root()
        script = root / "build-libesp.sh"
        if not script.is_file():
            script = root / "packaging" / "build-libesp.sh"
        out = pathlib.Path(self.build_lib) / "esp" / "_lib"
        subprocess.run(["sh", str(script), str(root), str(out)], check=True)


class SdistWithSources(sdist):
    """Copies libesp's sources into csrc/ first (generated, never kept by hand)."""

    def run(self) -> None:
        bundle = TREE / "packaging" / "bundle-sources.sh"
        if bundle.is_file():
            subprocess.run(["sh", str(bundle), str(BUNDLED)], check=True)
        super().run()


class PlatformWheel(bdist_wheel):
    """py3-none-<platform>: libesp is loaded through cffi's ABI mode (or ctypes),
    so one wheel serves every CPython >= 3.10 on its platform."""

    def get_tag(self) -> tuple[str, str, str]:
        return ("py3", "none", super().get_tag()[2])


class PlatformDistribution(Distribution):
    def has_ext_modules(self) -> bool:
        return True


setup(
    version=header_version(),
    distclass=PlatformDistribution,
    cmdclass={"build_py": BuildPyWithLibesp, "sdist": SdistWithSources, "bdist_wheel": PlatformWheel},
)
