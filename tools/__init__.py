"""The project's tools, importable where tests, demo and benchmarks share code.

testbed: the LXD test bed as ``tools/lxd-testbed env`` describes it.
services: Nova's in-process services with this driver over it.
"""
