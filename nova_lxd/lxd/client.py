"""The connection to one LXD server or cluster.

Every LXD request of the driver goes through ``LXD``; nothing else in
nova_lxd imports pylxd. LXD's websockets (a container's console) go
through websocket-client rather than pylxd's ws4py: OpenStack's global
requirements list it (not ws4py), its API is plain blocking calls, which
work in nova-compute's native threads and under eventlet alike, and it
takes a socket made here (LXD's unix socket, or TLS pinned as below).

Requests go through pylxd's ``api`` nodes (``client.api.instances[name]``:
one REST path, one HTTP method), not through its models (``Instance``,
``StorageVolume``...), because the driver needs what the models do not
give: ``target=`` on every create, including storage volumes (Nova
places, LXD obeys); a timeout per operation (an image import waits for
minutes, a state change for [lxd] timeout plus the shutdown timeout);
``If-Match`` with the ETag of a GET, so that a read-modify-write of an
instance cannot undo a concurrent change; and plain dicts in and out, so
that the translators (container, gpu.assignment, state...) stay pure and
are tested without pylxd. The request, the wait for LXD's background
operation and the translation of LXD's errors are written once, here.
"""

import contextlib
from email import utils as email_utils
import os
import socket
import stat
import time
from urllib import parse

from oslo_concurrency import lockutils
from oslo_log import log as logging
from pylxd import client as pylxd_client
from pylxd import exceptions as pylxd_exc
import requests
from requests_toolbelt import multipart
import websocket

from nova_lxd import constants
from nova_lxd.lxd import errors
from nova_lxd.lxd import tls

LOG = logging.getLogger(__name__)

# "Instance is busy running a ... operation": LXD's refusal while another
# operation holds the instance; tried again this often, seconds apart.
BUSY = 'is busy running'
BUSY_RETRIES = 40
BUSY_RETRY_SECONDS = 0.25
# LXD's operation status codes: not finished yet (Created, Started,
# Running, Cancelling, Pending).
UNFINISHED = (100, 101, 103, 104, 105)
CANCELLED = 401

# Containers given their own id range: one at a time per member.
IDMAP_KEY = 'security.idmap.isolated'
IDMAP_BASE_KEY = 'security.idmap.base'
IDMAP_LOCK_PREFIX = 'nova-lxd-idmap-'

LOCAL_SOCKETS = ('/var/snap/lxd/common/lxd/unix.socket',
                 '/var/lib/lxd/unix.socket')


def _local_socket(endpoint):
    if endpoint:
        path = endpoint[len('unix://'):] if endpoint.startswith(
            'unix://') else endpoint
        if not os.path.exists(path):
            raise errors.bad_config(
                'LXD socket %s does not exist: is LXD running there? Fix '
                '[lxd] endpoint.' % path)
        return path
    for path in LOCAL_SOCKETS:
        if os.path.exists(path):
            return path
    raise errors.bad_config(
        'No local LXD socket found (%s). Start LXD, or set [lxd] endpoint '
        'to its socket or its https:// address.' % ', '.join(LOCAL_SOCKETS))


def _https_session(conf):
    if not (conf.client_cert and conf.client_key):
        raise errors.bad_config(
            'LXD endpoint %s is HTTPS: set [lxd] client_cert and [lxd] '
            'client_key to a certificate that LXD trusts.' % conf.endpoint)
    for opt in ('client_cert', 'client_key'):
        if not os.path.exists(getattr(conf, opt)):
            raise errors.bad_config('[lxd] %s: no file %s.' % (
                opt, getattr(conf, opt)))
    check_key_mode(conf.client_key)
    if not conf.server_cert and not conf.insecure:
        raise errors.bad_config(
            'LXD endpoint %s is HTTPS but [lxd] server_cert is not set. Set '
            'it to the LXD server\'s certificate (cluster.crt of a cluster) '
            'so that the server is verified; [lxd] insecure = True skips '
            'verification.' % conf.endpoint)
    if conf.insecure:
        LOG.warning('[lxd] insecure = True: the certificate of LXD at %s is '
                    'not verified; anyone on the path to it can impersonate '
                    'it and see every request. Set [lxd] server_cert and '
                    'insecure = False.', conf.endpoint)
    try:
        return tls.https_session(conf.client_cert, conf.client_key,
                                 conf.server_cert, conf.insecure)
    except (OSError, ValueError) as e:
        raise errors.bad_config(
            '[lxd] server_cert %s is not a readable PEM certificate: %s'
            % (conf.server_cert, e))


def _disposition_filename(value):
    """The filename of a Content-Disposition header; '' when it has none."""
    for part in value.split(';'):
        key, sep, name = part.strip().partition('=')
        if sep and key.strip().lower() == 'filename':
            return name.strip().strip('"')
    return ''


def check_key_mode(path):
    """Refuse a private key that every user of this host can read.

    The key is LXD's trust in nova-compute: whoever reads it controls
    every container. Its group may read it (nova-compute's group), the
    world may not.
    """
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & stat.S_IRWXO:
        raise errors.bad_config(
            '[lxd] client_key %s can be read by every user of this host '
            '(mode %04o): anyone could then control LXD as nova-compute. '
            'Run: chmod 600 %s (or 640 with nova-compute\'s group).'
            % (path, mode, path))


def _connect_error(endpoint, conf, exc):
    text = str(exc)
    if 'Fingerprints did not match' in text:
        return errors.bad_config(
            'LXD at %s presented a certificate other than [lxd] server_cert '
            '(%s): %s. Set server_cert to the certificate this LXD server '
            'or cluster presents.' % (endpoint, conf.server_cert, text))
    return errors.bad_config(
        'Cannot reach LXD at %s: %s. Check that LXD listens there and fix '
        '[lxd] endpoint.' % (endpoint, text))


class LXD(object):
    """One LXD server or cluster, in one LXD project.

    ``conf`` is the ``[lxd]`` option group. Connecting checks the endpoint,
    the certificates, the project and the storage pool, and raises
    InvalidConfiguration naming the option to fix (nova-lxd-status runs
    each check on its own).
    """

    def __init__(self, conf, verify=True):
        """Connect; with ``verify``, also check trust, project and pool.

        Connecting fails (InvalidConfiguration) when LXD cannot be reached
        or presents a certificate other than ``server_cert``.
        """
        self.conf = conf
        if conf.endpoint and conf.endpoint.startswith('https://'):
            endpoint = conf.endpoint
            session = _https_session(conf)
        else:
            endpoint = _local_socket(conf.endpoint)
            session = None
        self.endpoint = endpoint
        try:
            self._client = pylxd_client.Client(
                endpoint=endpoint, project=conf.project, timeout=conf.timeout,
                session=session,
                cert=session.cert if session else None)
        except pylxd_exc.ClientConnectionFailed as e:
            raise _connect_error(endpoint, conf, e)
        self.info = self._client.host_info
        if verify:
            self.check_trusted()
            self.check_project()
            self.check_pool()

    def check_trusted(self):
        """Raise InvalidConfiguration unless LXD trusts this client."""
        if self.info.get('auth') != 'trusted':
            raise errors.bad_config(
                'LXD at %(endpoint)s does not trust this client\'s '
                'certificate ([lxd] client_cert %(cert)s). Trust it on a '
                'cluster member: lxc config trust add %(cert)s'
                % {'endpoint': self.endpoint, 'cert': self.conf.client_cert})

    def check_project(self):
        self._check('projects', self.conf.project, 'project',
                    'lxc project create %s' % self.conf.project)

    def check_pool(self):
        self._check('storage_pools', self.conf.storage_pool, 'storage_pool',
                    'lxc storage list')

    def _check(self, collection, name, option, hint):
        try:
            getattr(self._client.api, collection)[name].get()
        except pylxd_exc.NotFound:
            raise errors.bad_config(
                'LXD at %s has no %s "%s" ([lxd] %s); see: %s' % (
                    self.endpoint, collection.rstrip('s').replace('_', ' '),
                    name, option, hint))

    @property
    def pylxd(self):
        """The pylxd client, for the modules of nova_lxd.lxd only."""
        return self._client

    @property
    def session(self):
        """The requests session every LXD request goes through."""
        return self._client.api.session

    @property
    def environment(self):
        return self.info['environment']

    @property
    def api_extensions(self):
        return self.info.get('api_extensions', [])

    @property
    def clustered(self):
        return bool(self.environment.get('server_clustered'))

    @property
    def server_version(self):
        return self.environment['server_version']

    @property
    def local_member(self):
        """The member behind a local socket: this host; None over HTTPS.

        What runs on this host (NVML, os-brick, os-vif) sees only its GPUs,
        volumes and ports.
        """
        if self.endpoint.startswith('https://'):
            return None
        return self.environment.get('server_name')

    @property
    def certificate_fingerprint(self):
        """The server's (a cluster's shared) certificate fingerprint."""
        return self.environment['certificate_fingerprint']

    def members(self):
        """Cluster members as {name: status}; a standalone server is one."""
        if not self.clustered:
            return {self.environment['server_name']: 'Online'}
        found = self._get(self._client.api.cluster.members,
                          params={'recursion': 1})
        return {m['server_name']: m['status'] for m in found}

    def member_urls(self):
        """{member name: its own HTTPS address}; empty when standalone."""
        if not self.clustered:
            return {}
        found = self._get(self._client.api.cluster.members,
                          params={'recursion': 1})
        return {m['server_name']: m['url'] for m in found}

    def server_date(self, url=None):
        """LXD's clock and this host's, as (LXD's Date, this host's time).

        Both in epoch seconds; this host's time is the middle of the
        request, LXD's has the Date header's one-second resolution.
        ``url``: another member's own address (``member_urls``), asked over
        this connection's HTTPS session (the cluster certificate is the
        same on every member); None: the endpoint itself.
        """
        before = time.time()
        if url is None:
            response = self._request('get', self._client.api)
        else:
            if not self.endpoint.startswith('https://'):
                raise errors.LXDError(
                    reason='members are asked at their own address over '
                           'HTTPS only; [lxd] endpoint is %s' % self.endpoint)
            try:
                response = self.session.get(url.rstrip('/') + '/1.0',
                                            timeout=self.conf.timeout)
                response.raise_for_status()
            except requests.RequestException as e:
                raise errors.LXDError(
                    reason='cannot reach %s: %s' % (url, e))
        after = time.time()
        date = response.headers.get('Date')
        if not date:
            raise errors.LXDError(reason='%s sent no Date header'
                                  % (url or self.endpoint))
        # The middle of the second the Date header names.
        return (email_utils.parsedate_to_datetime(date).timestamp() + 0.5,
                (before + after) / 2)

    def _target(self, member):
        return {'target': member} if self.clustered else {}

    def resources(self, member):
        """``GET /1.0/resources`` of one member (CPU, memory, GPUs...)."""
        return self._get(self._client.api.resources,
                         params=self._target(member))

    def pool_resources(self, member):
        """Space of [lxd] storage_pool on one member."""
        pool = self._client.api.storage_pools[self.conf.storage_pool]
        return self._get(pool.resources, params=self._target(member))

    def pool(self, member, name=None):
        """A pool (default: ``[lxd] storage_pool``) as seen on one member.

        Its driver and, on that member, its ``source``.
        """
        pool = self._client.api.storage_pools[name or self.conf.storage_pool]
        return self._get(pool, params=self._target(member))

    def instances(self):
        """All instances of the project with their config: one request."""
        return self._get(self._client.api.instances, params={'recursion': 1})

    def sees_all_projects(self):
        """Whether ``instances_of_all_projects`` lists every project.

        Not without LXD's ``instance_all_projects``; and not for a client
        certificate LXD restricted to some projects, for which LXD answers
        ``all-projects`` with those projects' instances only, silently.
        Over the local socket the client is LXD's root.
        """
        if 'instance_all_projects' not in self.api_extensions:
            return False
        if not self.endpoint.startswith('https://'):
            return True
        fingerprint = tls.certificate_fingerprint(self.conf.client_cert)
        try:
            mine = self._get(self._client.api.certificates[fingerprint])
        except errors.LXDError:
            return False
        return not mine.get('restricted')

    def instances_of_all_projects(self):
        """Every project's instances: one request.

        What holds a card matters whichever project it is in. LXD refuses
        ``all-projects`` together with ``project``, so this request goes
        without the client's project. Complete only when
        ``sees_all_projects``.
        """
        if 'instance_all_projects' not in self.api_extensions:
            return self.instances()
        api = self._client.api
        root = type(api)(api._api_endpoint, session=api.session,
                         timeout=api._timeout)
        return self._get(root.instances,
                         params={'recursion': 1, 'all-projects': 'true'})

    def instance(self, name):
        """``GET /1.0/instances/<name>``; raises LXDNotFound."""
        return self._get(self._client.api.instances[name])

    def instance_with_state(self, name):
        """``GET /1.0/instances/<name>?recursion=1``: with its ``state``.

        Raises LXDNotFound.
        """
        return self._get(self._client.api.instances[name],
                         params={'recursion': 1})

    def instance_state(self, name):
        """``GET /1.0/instances/<name>/state``; None when it does not exist."""
        try:
            return self._get(self._client.api.instances[name].state)
        except errors.LXDNotFound:
            return None

    def create_instance(self, body, member):
        """Create on exactly ``member``: LXD's own placement is never used.

        Waits [lxd] create_timeout (it unpacks the image on the member).
        Containers given their own id range (security.idmap.isolated, no
        security.idmap.base) get it one at a time per member: LXD 5.0
        picks the range when the key is set, and containers given one at
        the same moment get the same host ids, even ids outside root's
        subordinate range (measured: 6 creates at once, 2 pairs shared).
        The files take the range at the first start (LXD shifts them
        then), so such a container is created without the key, at once
        with others, and the key set after. Not one with GPUs: LXD sets
        LXC up for a config change, which for MIG slices and NVIDIA's
        runtime needs NVIDIA's container tools on the member; such a
        container is created with the key, one at a time (its GPUs are
        picked under the member's lock anyway).
        """
        config = body.get('config') or {}
        isolated = (config.get(IDMAP_KEY) == 'true' and
                    IDMAP_BASE_KEY not in config)
        gpus = (any(k.startswith('nvidia.') for k in config) or
                any(d.get('type') == 'gpu'
                    for d in (body.get('devices') or {}).values()))
        later = isolated and not gpus
        if later:
            body = dict(body, config={k: v for k, v in config.items()
                                      if k != IDMAP_KEY})
        lock = lockutils.lock(IDMAP_LOCK_PREFIX + str(member))
        with (lock if isolated and not later else contextlib.nullcontext()):
            self._run('post', self._client.api.instances, json=body,
                      params=self._target(member),
                      wait=self.conf.create_timeout)
        if later:
            with lock:
                self.update_instance(body['name'],
                                     {'config': {IDMAP_KEY: 'true'}})

    def change_state(self, name, action, timeout=None, force=False):
        """start, stop, restart, freeze or unfreeze, and wait for it.

        ``timeout`` bounds a clean stop/restart; LXD fails the operation
        when the container did not shut down in time.
        """
        body = {'action': action, 'force': force}
        if timeout:
            body['timeout'] = timeout
        self._run('put', self._client.api.instances[name].state,
                  json=body, wait=(timeout or 0) + self.conf.timeout)

    def move_instance(self, name, member, timeout):
        """Move a stopped instance to ``member``: LXD's cluster move.

        Not live (LXD 5.0 takes ``live`` for true when it is left out,
        which needs CRIU). The instance keeps its name and config; its
        root goes through LXD's migration to the member's pool.
        ``timeout``: how long the copy may take.
        """
        self._run('post', self._client.api.instances[name],
                  json={'name': name, 'migration': True, 'live': False},
                  params={'target': member}, wait=timeout)

    def locate(self, name):
        """{'name', 'location', 'status_code'...} of ``name``; None if none.

        From the instance listing, which answers for instances of an
        offline member too (with ``config`` None and status Error),
        where ``GET /1.0/instances/<name>`` waits for that member.
        """
        found = self._get(self._client.api.instances, params={
            'recursion': 1, 'filter': 'name eq %s' % name})
        return found[0] if found else None

    def instances_of(self, owner):
        """The instances whose Nova keys name ``owner`` (a UUID): one request.

        Its containers and rescue containers, with their location; an
        offline member's are not known (LXD lists them without config).
        """
        return self._get(self._client.api.instances, params={
            'recursion': 1,
            'filter': ' or '.join('config.%s eq %s' % (key, owner) for key in (
                constants.INSTANCE_UUID_KEY, constants.RESCUE_OF_KEY))})

    def instance_names(self):
        """Names of every instance of the project: one cheap request."""
        return {parse.urlparse(url).path.rsplit('/', 1)[-1]
                for url in self._get(self._client.api.instances)}

    def update_instance(self, name, patch):
        """PATCH the instance's config or devices (applied live)."""
        self._run('patch', self._client.api.instances[name], json=patch)

    def replace_instance(self, name, found, etag=None):
        """PUT the instance as ``found`` (a GET of it, changed): applied live.

        Unlike PATCH, devices missing from ``found`` are removed. ``etag``
        (of that GET) guards against a concurrent change.
        """
        body = {k: found[k] for k in ('architecture', 'config', 'devices',
                                      'ephemeral', 'profiles', 'description')
                if k in found}
        self._run('put', self._client.api.instances[name], json=body,
                  headers={'If-Match': etag} if etag else {})

    def remove_device(self, name, device):
        """Remove one device of an instance (live); False if it had none."""
        response = self._request('get', self._client.api.instances[name])
        found = response.json()['metadata']
        if device not in found['devices']:
            return False
        del found['devices'][device]
        self.replace_instance(name, found, response.headers.get('ETag'))
        return True

    def _volumes(self, pool):
        return self._client.api.storage_pools[pool].volumes.custom

    def create_volume(self, pool, body, member):
        """Create a custom storage volume on exactly ``member``."""
        self._run('post', self._client.api.storage_pools[pool].volumes,
                  json=body, params=self._target(member))

    def update_volume(self, pool, name, member, patch):
        """PATCH a custom volume of ``member`` (its size, ...)."""
        self._run('patch', self._volumes(pool)[name], json=patch,
                  params=self._target(member))

    def delete_volume(self, pool, name, member):
        """Delete a custom volume of ``member``; False if already gone."""
        try:
            self._run('delete', self._volumes(pool)[name],
                      params=self._target(member),
                      wait=self.conf.delete_timeout)
        except errors.LXDNotFound:
            return False
        return True

    def volume_locations(self, pool, name):
        """The members that have a custom volume ``name`` in ``pool``."""
        return [v.get('location', '') for v in self._get(
            self._client.api.storage_pools[pool].volumes,
            params={'recursion': 1, 'filter': 'name eq %s' % name})
            if v['type'] == 'custom']

    def move_volume(self, pool, name, source, member, timeout):
        """Move a custom volume of member ``source`` to ``member``.

        As ``lxc storage volume move --target --destination-target`` does
        it on LXD 5.0: ``source`` offers the volume as a migration,
        ``member`` pulls it from there, then the source's copy is
        deleted. ``timeout``: how long the copy may take.
        """
        volume = self._volumes(pool)[name]
        found = self._get(volume, params=self._target(source))
        offer = self._start('post', volume, params=self._target(source),
                            json={'name': name, 'pool': pool,
                                  'migration': True})
        operation = parse.urlparse(offer['operation']).path
        self._run('post', self._client.api.storage_pools[pool].volumes.custom,
                  params=self._target(member), wait=timeout, json={
                      'name': name, 'type': 'custom',
                      'config': found['config'],
                      'description': found.get('description', ''),
                      'content_type': found.get('content_type',
                                                'filesystem'),
                      'source': {
                          'type': 'migration', 'mode': 'pull',
                          'name': name, 'pool': pool,
                          'operation': self.member_urls()[source].rstrip(
                              '/') + operation,
                          'certificate': self.environment['certificate'],
                          'secrets': offer['metadata']['metadata'],
                          'volume_only': False}})
        self._wait(offer, timeout)
        self.delete_volume(pool, name, source)

    def ensure_profile(self, body):
        """Create an LXD profile unless one of that name exists."""
        try:
            self._run('post', self._client.api.profiles, json=body)
        except errors.LXDError as e:
            if 'already exists' not in str(e):
                raise

    def delete_unused_profiles(self, is_ours):
        """Delete the profiles ``is_ours(name)`` claims that nothing uses."""
        for profile in self._get(self._client.api.profiles,
                                 params={'recursion': 1}):
            if is_ours(profile['name']) and not profile.get('used_by'):
                try:
                    self._run('delete',
                              self._client.api.profiles[profile['name']])
                except errors.LXDError as e:
                    # Taken by a spawn meanwhile: the next delete retries.
                    LOG.info('Profile %s kept: %s', profile['name'], e)

    def delete_instance(self, name):
        """Delete; False when it was already gone."""
        try:
            self._run('delete', self._client.api.instances[name],
                      wait=self.conf.delete_timeout)
        except errors.LXDNotFound:
            return False
        return True

    def delete_owned(self, name, key, owner):
        """Stop hard and delete ``name`` if its config ``key`` is ``owner``.

        A container another instance or someone else made under the same
        name is left alone (and logged). False when nothing was deleted:
        gone already, or not ``owner``'s.
        """
        try:
            found = self.instance(name)
        except errors.LXDNotFound:
            return False
        if found['config'].get(key) != owner:
            LOG.warning('Container %s is not the one of %s (%s); left alone',
                        name, owner, key)
            return False
        if found['status'] != 'Stopped':
            self.change_state(name, 'stop', force=True)
        return self.delete_instance(name)

    def push_files(self, name, files, mode='0400'):
        """Write {path: bytes} into the container's filesystem, as root.

        Missing parent directories are made (0755); works on a stopped
        container, so files are in place before its first boot.
        """
        api = self._client.api.instances[name].files
        folders = sorted({os.path.dirname(p) for p in files})
        made = set()
        for folder in folders:
            parts = folder.strip('/').split('/')
            for depth in range(1, len(parts) + 1):
                path = '/' + '/'.join(parts[:depth])
                if path not in made:
                    self._request('post', api, params={'path': path},
                                  headers={'X-LXD-type': 'directory',
                                           'X-LXD-mode': '0755'})
                    made.add(path)
        for path, data in sorted(files.items()):
            self._request('post', api, params={'path': path}, data=data,
                          headers={'X-LXD-type': 'file', 'X-LXD-mode': mode,
                                   'X-LXD-uid': '0', 'X-LXD-gid': '0',
                                   'Content-Type':
                                       'application/octet-stream'})

    def console_log(self, name, limit):
        """The container's console log as LXD hands it out: (bytes, stopped).

        Running: what the console printed since the last read (liblxc
        hands each byte of its ring buffer out once). Stopped: LXD's log
        file of the last run (what nobody read before it stopped), the
        same on every read until the next start, which empties it. LXD
        answers the first from memory (no file name) and the second from
        the file (its path as the name): that tells them apart without a
        second request. The bytes are the guest's, raw (any encoding,
        escape sequences, NULs), at most the last ``limit`` of them.
        """
        try:
            response = self._request('get', self._client.api.instances[name]
                                     .console, is_api=False, stream=True)
        except errors.LXDNotFound:
            raise
        except errors.LXDError as e:
            # LXD 5.0 answers 500 "open : no such file" when a running
            # container printed nothing new.
            if 'no such file' in str(e):
                return b'', False
            raise
        with response:
            stopped = bool(_disposition_filename(
                response.headers.get('Content-Disposition', '')))
            data = bytearray()
            try:
                for chunk in response.iter_content(64 * 1024):
                    data += chunk
                    del data[:-limit]
            except requests.RequestException as e:
                raise errors.LXDError(
                    reason='reading the console log of %s: %s' % (name, e))
        return bytes(data), stopped

    def open_console(self, name, width, height):
        """Attach to a running container's console (a ``Console``).

        ``POST /1.0/instances/<name>/console`` (type console; LXD forwards
        it to the member that runs the container), then its data and
        control websockets. Raises LXDNotFound, or LXDError (not running,
        frozen...).
        """
        started = self._request(
            'post', self._client.api.instances[name].console,
            json={'type': 'console', 'width': width, 'height': height})
        body = started.json()
        operation = parse.urlparse(body['operation'])
        fds = body['metadata']['metadata']['fds']
        sockets = []
        try:
            for fd in ('0', 'control'):
                query = parse.parse_qsl(operation.query) + [
                    ('secret', fds[fd])]
                sockets.append(self._websocket('%s/websocket?%s' % (
                    operation.path, parse.urlencode(query))))
        except (OSError, websocket.WebSocketException) as e:
            for ws in sockets:
                ws.abort()
            raise _logged(errors.LXDError(
                reason='cannot attach to the console of %s: %s' % (name, e)))
        return Console(*sockets)

    def _websocket(self, path):
        """A websocket to LXD at ``path``, over this client's transport."""
        if self.endpoint.startswith('https://'):
            url = parse.urlparse(self.endpoint)
            sock = tls.pinned_socket(
                url.hostname, url.port or 8443, self.conf.client_cert,
                self.conf.client_key, self.conf.server_cert,
                self.conf.insecure, self.conf.timeout)
            url = 'wss://%s%s' % (url.netloc, path)
        else:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.conf.timeout)
            try:
                sock.connect(self.endpoint)
            except OSError:
                sock.close()
                raise
            url = 'ws://lxd%s' % path
        try:
            ws = websocket.create_connection(
                url, socket=sock, timeout=self.conf.timeout,
                enable_multithread=True)
        except Exception:
            sock.close()
            raise
        # Reads wait for the console, however long it is quiet.
        ws.settimeout(None)
        return ws

    def snapshot(self, name, snapshot, expires_at):
        """An instance snapshot that LXD deletes itself at ``expires_at``.

        ``expires_at``: an ISO 8601 date; what a pipeline that stopped
        waiting for it leaves goes on its own. Waits [lxd] snapshot_timeout.
        """
        self._run('post', self._client.api.instances[name].snapshots,
                  json={'name': snapshot, 'stateful': False,
                        'expires_at': expires_at},
                  wait=self.conf.snapshot_timeout)

    def delete_snapshot(self, name, snapshot):
        """Delete an instance snapshot; False when already gone."""
        try:
            self._run('delete',
                      self._client.api.instances[name].snapshots[snapshot],
                      wait=self.conf.delete_timeout)
        except errors.LXDNotFound:
            return False
        return True

    def publish_snapshot(self, name, snapshot, properties, alias):
        """Publish an instance snapshot as a (private) LXD image.

        Returns its fingerprint. A container publishes as a unified
        tarball, which this driver boots again; uncompressed, as
        nova_lxd.snapshot_image reads it (it compresses what goes to
        Glance). The image is named by ``alias`` ({name, description})
        from the start, so that one whose publish outlived [lxd]
        snapshot_timeout is found and pruned.
        """
        source = {'type': 'snapshot', 'name': '%s/%s' % (name, snapshot)}
        result = self._run('post', self._client.api.images, json={
            'source': source, 'properties': properties, 'public': False,
            'aliases': [alias], 'compression_algorithm': 'none'},
            wait=self.conf.snapshot_timeout)
        return result['fingerprint']

    def export_image(self, fingerprint):
        """A streamed response with the image file."""
        return self._request('get', self._client.api.images[fingerprint]
                             .export, is_api=False, stream=True)

    def delete_image(self, fingerprint):
        """Delete an image (and its aliases); gone already is fine."""
        try:
            self._run('delete', self._client.api.images[fingerprint],
                      wait=self.conf.delete_timeout)
        except errors.LXDNotFound:
            pass

    def image_exists(self, fingerprint):
        try:
            self._get(self._client.api.images[fingerprint])
        except errors.LXDNotFound:
            return False
        return True

    def images(self):
        """All images of the project with their aliases: one request."""
        return self._get(self._client.api.images, params={'recursion': 1})

    def upload_image(self, parts):
        """``POST /1.0/images``, streaming the files; LXD's fingerprint.

        ``parts``: ``[(None, path)]`` for a unified tarball, else ``[(form
        name, path), ...]`` (metadata and rootfs of a split image). LXD
        may take [lxd] image_import_timeout to process it (hashing,
        unpacking its metadata, copying it to other members).
        """
        with contextlib.ExitStack() as files:
            if parts[0][0] is None:
                body = files.enter_context(open(parts[0][1], 'rb'))
                content_type = 'application/octet-stream'
            else:
                body = multipart.MultipartEncoder([
                    (name, (name, files.enter_context(open(path, 'rb')),
                            'application/octet-stream'))
                    for name, path in parts])
                content_type = body.content_type
            return self._run('post', self._client.api.images,
                             wait=self.conf.image_import_timeout, data=body,
                             headers={'Content-Type': content_type})[
                'fingerprint']

    def image_alias(self, alias):
        """An image alias (target, description...); None without it."""
        try:
            return self._get(self._client.api.images.aliases[alias])
        except errors.LXDNotFound:
            return None

    def add_image_alias(self, alias, fingerprint, description):
        """Name an image; False when the alias exists already."""
        try:
            self._run('post', self._client.api.images.aliases, json={
                'name': alias, 'target': fingerprint,
                'description': description})
        except errors.LXDConflict:
            return False
        return True

    def delete_image_alias(self, alias):
        """Remove an alias (not its image); False when already gone."""
        try:
            self._run('delete', self._client.api.images.aliases[alias])
        except errors.LXDNotFound:
            return False
        return True

    def _get(self, node, **kwargs):
        return self._request('get', node, **kwargs).json()['metadata']

    def _run(self, method, node, wait=None, **kwargs):
        """A request that may start a background operation: wait for it.

        LXD refuses an action on an instance while another operation
        holds the instance's lock ("Instance is busy running a ...
        operation"), and releases that lock a moment after the operation
        that took it has answered: such a refusal is tried again, every
        BUSY_RETRY_SECONDS, BUSY_RETRIES times. Nothing was done when LXD
        answers so, whatever the request.
        """
        for attempt in range(BUSY_RETRIES, -1, -1):
            try:
                return self._wait(self._start(method, node, **kwargs),
                                  wait)
            except errors.LXDError as e:
                if not attempt or BUSY not in str(e):
                    raise
                LOG.debug('LXD is busy (%s); trying again', e)
                time.sleep(BUSY_RETRY_SECONDS)

    def _start(self, method, node, **kwargs):
        """Send a request; its body (an operation's when it is async)."""
        return self._request(method, node, **kwargs).json()

    def _wait(self, body, wait=None):
        """The result of a request's body: its operation's, once done."""
        if body.get('type') != 'async':
            return body.get('metadata')
        wait = wait or self.conf.timeout
        # '/1.0/operations/<id>?project=<p>': the id, without the query.
        operation = parse.urlparse(body['operation']).path.rsplit('/', 1)[-1]
        result = self._wait_operation(operation, wait)
        if result.get('status_code') in UNFINISHED:
            result = self._cancel(operation, result, wait)
        if result.get('status_code') != 200:
            raise _logged(errors.LXDError(
                reason=result.get('err') or '%s after %ds' % (
                    result.get('status'), wait)))
        return result.get('metadata')

    def _wait_operation(self, operation, wait):
        """The operation once it ended, or as it is after ``wait`` s."""
        return self._get(self._client.api.operations[operation].wait,
                         params={'timeout': wait}, timeout=wait + 10)

    def _cancel(self, operation, found, wait):
        """An operation that outlived ``wait``: cancelled where LXD can.

        LXD 5.0 cancels few operations (``may_cancel``); the others go on,
        and what they make is named so that it is found later. Returns the
        operation when it ended meanwhile; raises LXDTimeout otherwise.
        """
        what = found.get('description') or 'operation'
        if found.get('may_cancel'):
            try:
                self._request('delete',
                              self._client.api.operations[operation])
                found = self._wait_operation(operation, self.conf.timeout)
            except errors.LXDError as e:
                LOG.warning('Could not cancel LXD operation %s (%s): %s',
                            operation, what, e)
        if found.get('status_code') not in UNFINISHED + (CANCELLED,):
            return found
        ended = ('cancelled' if found.get('status_code') == CANCELLED else
                 'LXD goes on with it')
        LOG.warning('LXD operation %s (%s) did not finish within %ds: %s',
                    operation, what, wait, ended)
        raise errors.LXDTimeout(
            reason='%s (operation %s) did not finish within %ds; %s' % (
                what, operation, wait, ended))

    def _request(self, method, node, **kwargs):
        try:
            return getattr(node, method)(**kwargs)
        except pylxd_exc.NotFound as e:
            raise errors.LXDNotFound(reason=errors.reason(e))
        except pylxd_exc.Conflict as e:
            raise errors.LXDConflict(reason=errors.reason(e))
        except pylxd_exc.LXDAPIException as e:
            raise _logged(errors.LXDError(reason=errors.reason(e)))
        except requests.RequestException as e:
            raise _logged(errors.LXDError(
                reason='cannot reach %s: %s' % (self.endpoint, e)))


def _logged(error):
    """Log LXD's whole words where the tenant's message leaves paths out."""
    if error.lxd_reason != errors.tenant_safe(error.lxd_reason):
        LOG.warning('LXD: %s', error.lxd_reason)
    return error


# How a websocket ends: closed by LXD (WebSocketException), the network
# (OSError), or closed here while a thread read it (EOFError, eventlet's).
_CLOSED = (OSError, EOFError, websocket.WebSocketException)


class Console(object):
    """A container's console in LXD: its data and control websockets.

    Blocking calls; one thread may read while another writes.
    """

    def __init__(self, data, control):
        self._data = data
        self._control = control

    def read(self):
        """The console's next bytes; b'' once LXD has closed it."""
        try:
            while True:
                opcode, chunk = self._data.recv_data()
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    return b''
                if chunk:
                    return chunk
        except _CLOSED:
            return b''

    def write(self, data):
        """Type ``data``; False once the console is closed."""
        try:
            self._data.send_binary(data)
        except _CLOSED:
            return False
        return True

    def wait_closed(self):
        """Return once LXD closed the control websocket.

        LXD only pings on it (reading answers the pings); window-size
        changes would go the other way, and Nova sends none.
        """
        try:
            while self._control.recv_data()[0] != (
                    websocket.ABNF.OPCODE_CLOSE):
                pass
        except _CLOSED:
            pass

    def close(self):
        """Detach: LXD lets the console go."""
        for ws in (self._data, self._control):
            try:
                ws.abort()
                ws.shutdown()
            except _CLOSED:
                pass
