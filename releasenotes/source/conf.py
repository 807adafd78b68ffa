"""Sphinx configuration of nova-lxd's release notes (tox -e releasenotes)."""

project = 'nova-lxd release notes'
copyright = 'nova-lxd developers'

extensions = [
    'openstackdocstheme',
    # .. release-notes::  (reno's notes, from the git history)
    'reno.sphinxext',
]

html_theme = 'openstackdocs'
openstackdocs_repo_name = 'nova-lxd'
openstackdocs_auto_name = False
openstackdocs_use_storyboard = False

master_doc = 'index'
exclude_patterns = []
pygments_style = 'native'
