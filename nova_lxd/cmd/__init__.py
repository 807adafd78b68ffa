"""Operator commands of nova-lxd."""
