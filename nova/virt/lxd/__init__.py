"""Lets Nova load this driver as compute_driver = lxd.LXDDriver."""

from nova_lxd.driver import LXDDriver  # noqa: F401
