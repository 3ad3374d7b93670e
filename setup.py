"""Build of the one C extension, tsn.data._jpeg (libjpeg-turbo crop-box decoder).

Everything else is in pyproject.toml. `optional=True`: without libjpeg's headers
(Debian: libjpeg62-turbo-dev, installed by `make setup`) the package still installs and
frames decode through OpenCV, with the same pixels but slower (tsn/data/jpeg.py).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("tsn.data._jpeg", ["tsn/data/_jpeg.c"], libraries=["jpeg"],
                             extra_compile_args=["-O2", "-Wall"], optional=True)])
