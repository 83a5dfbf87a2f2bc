from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="channels",
    version="1.1.8.dev0",
    description=(
        "Django Channels in its channel-layer architecture: daphne, asgi_redis, "
        "asgi_ipc and the Django integration, for Python 3.11+ and Django 5.2."
    ),
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="BSD",
    python_requires=">=3.11",
    packages=find_packages(
        exclude=["tests", "tests.*", "support", "benchmarks", "examples", "examples.*"]
    ),
    include_package_data=True,
    install_requires=[
        "Django>=5.2,<6.0",
        "Twisted>=24.3",
        "autobahn>=24.4",
        "msgpack>=1.0",
        "redis>=5.0",
        "hiredis>=3.0",
        "prometheus_client>=0.20",  # issue 18: metrics endpoints
    ],
    extras_require={
        "encryption": ["cryptography>=42"],
        "tests": [
            "pytest>=8",
            "pytest-timeout>=2.3",
            "pytest-django>=4.9",
            "hypothesis>=6.100",
            "cryptography>=42",
            "websocket-client>=1.7",
            "websockets>=12",  # issue 21: a client that speaks permessage-deflate
            "kosoku>=0.1",
            "Twisted[tls,http2]>=24.3",  # daphne's ssl: endpoint and HTTP/2 tests
            "requests>=2.31",
            "ruff>=0.6",
            "mypy>=1.10",  # scripts/test: strict for channels.layers, asgi_ipc, asgi_redis
            "tox>=4",  # tox.ini: py311/py312/py313, lint, docs
            "playwright>=1.40",  # browser tests drive the system Chromium, no browser download
        ],
        "docs": ["sphinx>=7"],
        "bench": ["gunicorn>=22", "py-spy>=0.3"],
    },
    entry_points={
        "console_scripts": [
            "daphne = daphne.cli:CommandLineInterface.entrypoint",
        ],
    },
    classifiers=[
        "Framework :: Django",
        "Framework :: Django :: 5.2",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
    ],
)
