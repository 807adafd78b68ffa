"""Which LXD cluster members a service manages, and their node UUIDs."""

import uuid

from oslo_log import log as logging

from nova_lxd.lxd import errors

LOG = logging.getLogger(__name__)

# Fixed namespace for node UUIDs; changing it renames every node.
# A member's status when it answers (GET /1.0/cluster/members).
ONLINE = 'Online'

NODE_UUID_NAMESPACE = uuid.UUID('5b0c3e1e-5a8f-4c55-9d8e-6f1a8e0b7c11')


def managed_members(option, host, cluster):
    """The members named by ``[lxd] members``, checked against the cluster.

    ``option`` is the option's list, ``host`` the service's host name,
    ``cluster`` {member name: LXD status}. Raises InvalidConfiguration when
    a member is unknown. A member that is not online is managed all the
    same (with a warning): its node offers nothing new until it is back.
    """
    if option == ['*']:
        wanted = sorted(cluster)
    else:
        wanted = list(option) or [host]
    unknown = [m for m in wanted if m not in cluster]
    if unknown:
        default = '' if option else (
            ' ([lxd] members is empty, so the member named like this '
            'service\'s host is managed)')
        raise errors.bad_config(
            'LXD has no member %s%s. Its members are: %s. Set [lxd] members '
            'to some of them, or "*" for all.' % (
                ', '.join(unknown), default, ', '.join(sorted(cluster))))
    offline = ['%s (%s)' % (m, cluster[m]) for m in wanted
               if cluster[m] != ONLINE]
    if offline:
        LOG.warning('LXD member(s) %s not online (lxc cluster list): their '
                    'nodes take no new servers until they are back',
                    ', '.join(offline))
    return wanted


def node_uuid(cluster_fingerprint, member):
    """Stable per member across restarts, distinct between clusters.

    A cluster is known by its certificate fingerprint, a member by name.
    """
    return str(uuid.uuid5(NODE_UUID_NAMESPACE,
                          '%s/%s' % (cluster_fingerprint, member)))
