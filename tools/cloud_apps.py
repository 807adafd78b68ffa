"""WSGI applications of the small cloud (tools/cloud), one factory each.

gunicorn serves them as ``cloud_apps:<name>()``. Each factory hands the
service its own config file and, since Keystone and Nova parse sys.argv
with oslo.config when they build their application, replaces gunicorn's
command line with the program name first: gunicorn's options are not theirs.
The config files are in NOVA_LXD_CLOUD_ETC (the state folder's etc/).
Horizon runs from its own venv (``horizon()``).
"""

import os
import sys


def _setup(prog, service, files):
    sys.argv = [prog]
    etc = os.environ['NOVA_LXD_CLOUD_ETC']
    os.environ['OS_%s_CONFIG_DIR' % service] = etc
    if files:
        os.environ['OS_%s_CONFIG_FILES' % service] = ';'.join(files)


def keystone():
    _setup('keystone', 'KEYSTONE', ['keystone.conf'])
    from keystone.wsgi import api
    return api.application


def placement():
    # Reads <dir>/placement.conf.
    _setup('placement-api', 'PLACEMENT', [])
    from placement.wsgi import api
    return api.application


def nova_api():
    # Nova loads its paste pipeline from the first file.
    _setup('nova-api', 'NOVA', ['api-paste.ini', 'nova.conf', 'nova-db.conf'])
    from nova.wsgi import osapi_compute
    return osapi_compute.application


def nova_metadata():
    # Nova's metadata API, behind Neutron's metadata agent.
    _setup('nova-metadata', 'NOVA', ['api-paste.ini', 'nova.conf',
                                     'nova-db.conf'])
    from nova.wsgi import metadata
    return metadata.application


def glance():
    # Reads glance-api-paste.ini and glance-api.conf of <dir>.
    _setup('glance-api', 'GLANCE', [])
    from glance.wsgi import api
    return api.application


def neutron():
    _setup('neutron-api', 'NEUTRON', ['neutron.conf', 'ml2.conf'])
    # GET /v2.0/ports loads Port.port_forwardings, a backref that only
    # exists once neutron.db.models.port_forwarding is imported, which no
    # plugin of this API-only deployment does: without this, listing ports
    # (Nova does it for every server) can fail with AttributeError.
    from neutron.db.migration.models import head  # noqa: F401
    from neutron.wsgi import api
    from sqlalchemy import orm
    orm.configure_mappers()
    return api.application


def horizon():
    # Run from Horizon's own venv, with etc/horizon (local_settings) on
    # PYTHONPATH. Django's static files handler serves /static/ (what
    # `up` collected and compressed): no web server in front.
    os.environ['DJANGO_SETTINGS_MODULE'] = 'openstack_dashboard.settings'
    from django.contrib.staticfiles import handlers
    from django.core import wsgi
    return handlers.StaticFilesHandler(wsgi.get_wsgi_application())
