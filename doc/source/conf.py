"""Sphinx configuration of nova-lxd's documentation (tox -e docs)."""

import os
import sys

# The project's own small extensions (the lxd: extra spec table).
sys.path.insert(0, os.path.join(os.path.dirname(__file__), '_exts'))

project = 'nova-lxd'
copyright = 'nova-lxd developers'

extensions = [
    'openstackdocstheme',
    # .. show-options:: nova_lxd  (the oslo.config.opts entry point)
    'oslo_config.sphinxext',
    # .. lxd-extra-specs::  (nova_lxd.extra_specs.VALIDATORS)
    'extra_specs',
]

html_theme = 'openstackdocs'
openstackdocs_repo_name = 'nova-lxd'
openstackdocs_auto_name = False
openstackdocs_use_storyboard = False
openstackdocs_pdf_link = False

master_doc = 'index'
exclude_patterns = []
pygments_style = 'native'
