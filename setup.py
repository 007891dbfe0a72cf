from setuptools import find_packages, setup

version = {}
with open("mcinit/_version.py") as f:
    exec(f.read(), version)

setup(
    name="mcinit",
    version=version["__version__"],
    description="Monte Carlo of norm preservation in randomly initialised deep ReLU networks",
    long_description=open("README.md").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    packages=find_packages(include=["mcinit", "mcinit.*"]),
    python_requires=">=3.10",
    install_requires=[
        "numpy>=1.24",
        "numba>=0.59",
        "scipy>=1.10",
        "h5py>=3.8",
        "click>=8.0",
        "tqdm>=4.60",
        "pandas>=1.5",
        "matplotlib>=3.6",
        "tomli>=1.1; python_version<'3.11'",
    ],
    extras_require={
        "test": ["pytest>=7"],
        # the benchmark's optional PyTorch column (benchmarks/README.md); not needed by CI or the tests
        "bench": ["torch>=2.1"],
        # GPU backend; CUDA 13.0 compiler wheels: PTX ISA 9.0, read by any R580+ driver and 13.0 ptxas
        "cuda": ["numba-cuda[cu13]>=0.30.4,<0.31", "cuda-toolkit[nvvm,nvrtc,cudart]==13.0.*"],
    },
    entry_points={"console_scripts": ["mcinit = mcinit.cli:main"]},
)
