"""Kept for tools that call setup.py; every setting, the dependencies included, is in pyproject.toml."""

from setuptools import setup

setup()
