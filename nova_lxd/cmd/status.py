"""nova-lxd-status: can nova-compute run the LXD driver on this host?

In the style of ``nova-status upgrade check`` (oslo.upgradecheck): each
check says Success, Warning or Failure with what to fix; the exit code is
the worst result (0 success, 1 warning, 2 failure, 255 the command itself
failed); ``--json`` prints the results as JSON. It reads nova.conf as
nova-compute does and reaches LXD through nova_lxd.lxd, as the driver
does. Run it on the compute host, as the user nova-compute runs as::

    nova-lxd-status [--config-file /etc/nova/nova.conf] check [--json]
"""

import functools
import json
import shutil
import socket
import sys
import traceback

from nova.conf import netconf
from nova.conf import neutron as neutron_conf
from nova import exception
from oslo_config import cfg
from oslo_upgradecheck import upgradecheck
from vif_plug_ovs import ovs as os_vif_ovs

from nova_lxd import conf as lxd_conf
from nova_lxd.gpu import assignment
from nova_lxd.gpu import discovery
from nova_lxd.gpu import nvml
from nova_lxd.gpu import options as gpu_options
from nova_lxd.lxd import client
from nova_lxd.lxd import errors
from nova_lxd.lxd import members

Code = upgradecheck.Code
Result = upgradecheck.Result

# The LXD release the project tests (Debian 12's lxd package).
TESTED_LXD = (5, 0)
# What the driver uses on every LXD: projects, the instances API, and
# on a cluster, the target= of every create.
REQUIRED_EXTENSIONS = ('projects', 'instances')
CLUSTER_EXTENSIONS = ('clustering',)
# Pool drivers that enforce root and volume sizes (LXD's storage docs);
# dir only with project quotas on its filesystem.
SIZED_POOLS = ('btrfs', 'zfs', 'lvm', 'ceph')
# Clock skew: warn beyond this many seconds; fail beyond Nova's default
# service_down_time (a service whose clock is that far off looks down).
SKEW_WARNING = 5
SKEW_FAILURE = 60
OVSDB_TIMEOUT = 5


def ovsdb_has_bridge(connection, bridge, timeout=OVSDB_TIMEOUT):
    """Ask an OVSDB server whether ``bridge`` exists (JSON-RPC select).

    ``connection`` as os-vif's ``[os_vif_ovs] ovsdb_connection``:
    ``tcp:HOST:PORT`` or ``unix:PATH``. Raises OSError or ValueError when
    the server cannot be asked.
    """
    kind, _, where = connection.partition(':')
    if kind == 'unix':
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(where)
    elif kind == 'tcp':
        host, _, port = where.rpartition(':')
        sock = socket.create_connection((host.strip('[]'), int(port)),
                                        timeout=timeout)
    else:
        raise ValueError('%s: only tcp: and unix: connections are checked'
                         % connection)
    request = {'id': 0, 'method': 'transact', 'params': [
        'Open_vSwitch', {'op': 'select', 'table': 'Bridge',
                         'where': [['name', '==', bridge]],
                         'columns': ['name']}]}
    decoder = json.JSONDecoder()
    with sock:
        sock.sendall(json.dumps(request).encode())
        buffer = ''
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                raise OSError('%s closed the connection' % connection)
            buffer += chunk.decode()
            answer = None
            while buffer.strip():
                try:
                    message, end = decoder.raw_decode(buffer.lstrip())
                except ValueError:
                    break       # not complete yet
                buffer = buffer.lstrip()[end:]
                if message.get('id') == 0:
                    answer = message
                # else an echo or a notification: not ours
            if answer is not None:
                break
    if answer.get('error'):
        raise ValueError('%s: %s' % (connection, answer['error']))
    return bool(answer['result'][0].get('rows'))


def skew_result(offsets):
    """Result for {member: seconds its clock is ahead of this host's}."""
    if not offsets:
        return Result(Code.SUCCESS, 'No member could be compared.')
    text = ', '.join('%s %+.0f s' % (m, s) for m, s in sorted(
        offsets.items()))
    worst = max(abs(s) for s in offsets.values())
    spread = max(offsets.values()) - min(offsets.values())
    worst = max(worst, spread)
    fix = (' Synchronise the clocks of the members and of this host '
           '(chrony or systemd-timesyncd against the same NTP servers).')
    if worst > SKEW_FAILURE:
        return Result(Code.FAILURE, 'Clocks differ by up to %.0f s (%s), '
                      'more than Nova\'s service_down_time.%s'
                      % (worst, text, fix))
    if worst > SKEW_WARNING:
        return Result(Code.WARNING, 'Clocks differ by up to %.0f s (%s).%s'
                      % (worst, text, fix))
    return Result(Code.SUCCESS, 'Clock offsets from this host (Date '
                  'headers, 1 s resolution): %s.' % text)


def pool_result(name, by_member, allow_dir_pool=False):
    """Result for {member: LXD's pool record (driver, status)}.

    A dir pool is a failure (nova-compute refuses it) unless
    ``allow_dir_pool`` (``[lxd] allow_dir_pool``), then a warning.
    """
    missing = sorted(m for m, p in by_member.items() if p is None)
    if missing:
        return Result(Code.FAILURE, 'Storage pool "%s" ([lxd] storage_pool) '
                      'is missing on %s. Create it there (lxc storage create '
                      '%s <driver> --target <member>, then without --target) '
                      'or set [lxd] storage_pool to a pool every member has.'
                      % (name, ', '.join(missing), name))
    bad = sorted('%s (%s)' % (m, p.get('status')) for m, p in
                 by_member.items() if p.get('status') != 'Created')
    if bad:
        return Result(Code.FAILURE, 'Storage pool "%s" is not ready on %s. '
                      'See lxc storage show %s.' % (name, ', '.join(bad),
                                                    name))
    drivers = sorted({p['driver'] for p in by_member.values()})
    unsized = [d for d in drivers if d not in SIZED_POOLS]
    if unsized:
        refused = 'dir' in unsized and not allow_dir_pool
        return Result(Code.FAILURE if refused else Code.WARNING,
                      'Storage pool "%s" is %s, which does '
                      'not enforce root and ephemeral disk sizes (dir only '
                      'on a filesystem with project quotas): a container can '
                      'fill the pool. Use a btrfs, zfs, lvm or ceph pool for '
                      'enforced sizes%s.' % (
                          name, '/'.join(unsized),
                          '; nova-compute refuses it unless [lxd] '
                          'allow_dir_pool = True' if refused else ''))
    return Result(Code.SUCCESS, 'Storage pool "%s" (%s) on %s; sizes are '
                  'enforced.' % (name, '/'.join(drivers),
                                 ', '.join(sorted(by_member))))


def _version(text):
    try:
        return tuple(int(p) for p in text.split('.')[:2])
    except ValueError:
        return (0, 0)


def _lxd_may_fail(check):
    """An LXD error during the check fails it; the later checks still run.

    LXD may stop answering between two requests (a daemon restarting or
    dying): the command reports that check, not a traceback.
    """
    @functools.wraps(check)
    def run(self):
        try:
            return check(self)
        except errors.LXDError as e:
            return Result(Code.FAILURE, 'LXD failed during this check: %s. '
                          'Check the member\'s daemon (lxc cluster list) '
                          'and run the checks again.' % e)
    return run


class Checks(upgradecheck.UpgradeCommands):
    """The checks, in order; each later one needs LXD to answer."""

    display_title = 'nova-lxd Status Check Results'

    def __init__(self, conf):
        self.conf = conf
        self._lxd = None
        self._lxd_error = None
        self._managed = None

    @property
    def lxd(self):
        """The connection, or None when connecting failed (see _lxd_error)."""
        if self._lxd is None and self._lxd_error is None:
            try:
                self._lxd = client.LXD(self.conf.lxd, verify=False)
            except exception.NovaException as e:
                self._lxd_error = str(e)
        return self._lxd

    def _needs_lxd(self):
        if self.lxd is None:
            return Result(Code.FAILURE, 'Not checked: LXD cannot be used '
                          '(see "LXD reachable").')
        if self.lxd.info.get('auth') != 'trusted':
            return Result(Code.FAILURE, 'Not checked: LXD does not trust '
                          'this client (see "LXD trusts this client").')
        return None

    def _check_reachable(self):
        if self.lxd is None:
            return Result(Code.FAILURE, self._lxd_error)
        env = self.lxd.info.get('environment')
        if not env:
            # LXD tells an untrusted client nothing about itself.
            return Result(Code.SUCCESS, 'LXD answers at %s.'
                          % self.lxd.endpoint)
        return Result(Code.SUCCESS, 'LXD %s at %s (%s).' % (
            env.get('server_version', '?'), self.lxd.endpoint,
            'cluster' if env.get('server_clustered') else 'standalone'))

    def _check_trusted(self):
        if self.lxd is None:
            return self._needs_lxd()
        try:
            self.lxd.check_trusted()
        except exception.InvalidConfiguration as e:
            return Result(Code.FAILURE, str(e))
        if self.lxd.endpoint.startswith('https://'):
            return Result(Code.SUCCESS, 'LXD trusts [lxd] client_cert (%s).'
                          % self.conf.lxd.client_cert)
        return Result(Code.SUCCESS, 'Local unix socket: trusted as its '
                      'owner (root or group lxd).')

    def _check_certificate(self):
        if self.lxd is None:
            # A pin mismatch is one reason connecting fails.
            if 'certificate other than' in (self._lxd_error or ''):
                return Result(Code.FAILURE, self._lxd_error)
            return self._needs_lxd()
        if not self.lxd.endpoint.startswith('https://'):
            return Result(Code.SUCCESS, 'Local unix socket: no TLS.')
        if self.conf.lxd.insecure:
            return Result(Code.WARNING, '[lxd] insecure = True: any server '
                          'certificate is accepted, so anyone on the path '
                          'to LXD can impersonate it. Set [lxd] server_cert '
                          'to the cluster certificate and insecure = False.')
        return Result(Code.SUCCESS, 'LXD presented [lxd] server_cert (%s).'
                      % self.conf.lxd.server_cert)

    def _check_version(self):
        failed = self._needs_lxd()
        if failed:
            return failed
        env = self.lxd.info.get('environment', {})
        version = env.get('server_version', '0')
        have = set(self.lxd.api_extensions)
        needed = list(REQUIRED_EXTENSIONS)
        if self.lxd.clustered:
            needed += CLUSTER_EXTENSIONS
        gpus = self._gpu_config()
        if gpus is not None and gpus.devices:
            needed.append(assignment.EXT_GPU)
            if any(m.kind == 'mig' for _, m in gpus.modes):
                needed.append(assignment.EXT_MIG)
        missing = [e for e in needed if e not in have]
        if missing:
            return Result(Code.FAILURE, 'LXD %s lacks the API extension(s) '
                          '%s that the configured features need. Upgrade '
                          'LXD (the project tests %d.%d).' % (
                              version, ', '.join(missing), *TESTED_LXD))
        notes = []
        if 'instance_all_projects' not in have:
            notes.append('without instance_all_projects the GPU ledger '
                         'sees only [lxd] project, so a card held by '
                         'another project could be given twice')
        if _version(version) < TESTED_LXD:
            notes.append('LXD %s is older than the tested %d.%d'
                         % ((version,) + TESTED_LXD))
        if notes:
            return Result(Code.WARNING, '; '.join(notes) + '.')
        tested = ('tested' if _version(version) == TESTED_LXD else
                  'newer than the tested %d.%d' % TESTED_LXD)
        return Result(Code.SUCCESS, 'LXD %s (%s); every API extension the '
                      'configured features need is there.'
                      % (version, tested))

    def _check_members(self):
        failed = self._needs_lxd()
        if failed:
            return failed
        cluster = self.lxd.members()
        try:
            self._managed = members.managed_members(
                self.conf.lxd.members, self.conf.host, cluster)
        except exception.InvalidConfiguration as e:
            return Result(Code.FAILURE, str(e))
        offline = ['%s (%s)' % (m, cluster[m]) for m in sorted(cluster)
                   if cluster[m] != members.ONLINE]
        text = 'This service ([DEFAULT] host %s) manages %s as Nova ' \
            'compute node(s).' % (self.conf.host, ', '.join(self._managed))
        if offline:
            return Result(Code.WARNING, text + ' Members offline: %s; their '
                          'nodes take no new servers and their servers\' '
                          'power state is unknown until they are back '
                          '(lxc cluster list).' % ', '.join(offline))
        return Result(Code.SUCCESS, text)

    def _check_project(self):
        failed = self._needs_lxd()
        if failed:
            return failed
        try:
            self.lxd.check_project()
        except exception.InvalidConfiguration as e:
            return Result(Code.FAILURE, str(e))
        return Result(Code.SUCCESS, 'LXD project "%s".'
                      % self.conf.lxd.project)

    def _check_pool(self):
        failed = self._needs_lxd()
        if failed:
            return failed
        name = self.conf.lxd.storage_pool
        cluster = self.lxd.members()
        managed = self._managed or sorted(cluster)
        found = {}
        # An offline member cannot answer; the members check warns of it.
        for member in (m for m in managed if cluster.get(m) == members.ONLINE):
            try:
                found[member] = self.lxd.pool(member)
            except errors.LXDNotFound:
                found[member] = None
            except errors.LXDError as e:
                return Result(Code.FAILURE, 'Storage pool "%s" on %s: %s'
                              % (name, member, e))
        return pool_result(name, found, self.conf.lxd.allow_dir_pool)

    def _gpu_config(self):
        try:
            return gpu_options.from_conf(self.conf)
        except gpu_options.GpuConfigError:
            return None

    def _check_gpus(self):
        try:
            config = gpu_options.from_conf(self.conf)
        except gpu_options.GpuConfigError as e:
            return Result(Code.FAILURE, str(e))
        if not config.modes:
            return Result(Code.SUCCESS, 'No [lxd] gpu_modes set: any GPUs '
                          'are offered as whole cards (nova-lxd-gpus shows '
                          'them).')
        kinds = {m.kind for _, m in config.modes}
        problems = []
        local = self.lxd is not None and not self.lxd.endpoint.startswith(
            'https://')
        if 'mig' in kinds:
            if not local:
                problems.append('MIG slices are read with NVML on the '
                                'member\'s own host: run one nova-compute '
                                'per member over its local socket')
            elif nvml.collect() is None:
                problems.append('[lxd] gpu_modes asks for MIG but NVML is '
                                'not usable here (install the NVIDIA driver '
                                'and the nvidia-ml-py package in '
                                'nova-compute\'s environment)')
        if local and self._has_nvidia() and not self._nvidia_runtime_ready():
            problems.append('no NVIDIA container runtime for flavors with '
                            'lxd:nvidia_runtime: install the NVIDIA '
                            'container toolkit (nvidia-container-cli), or '
                            'use an LXD with the gpu_cdi extension and '
                            'generated CDI specs')
        if problems:
            return Result(Code.FAILURE, '; '.join(problems) + '.')
        return Result(Code.SUCCESS, 'GPU modes: %s.' % ', '.join(
            '%s=%s' % (k, m) for k, m in config.modes))

    def _has_nvidia(self):
        try:
            found = discovery.discover(self.lxd.resources(
                self.lxd.environment.get('server_name')))
        except (errors.LXDError, discovery.GPUDataError):
            return False
        return any(c.vendor_id == '10de' for c in found.cards)

    def _nvidia_runtime_ready(self):
        if assignment.EXT_CDI in self.lxd.api_extensions:
            return True
        return shutil.which('nvidia-container-cli') is not None

    def _check_network(self):
        if 'neutron' not in self.conf.list_all_sections():
            return Result(Code.SUCCESS, 'No [neutron] section: servers get '
                          'no Neutron ports here, nothing to plug.')
        problems = []
        if self.lxd is not None and self.lxd.endpoint.startswith('https://'):
            local = socket.gethostname()
            remote = [m for m in (self._managed or []) if m != local]
            if remote:
                problems.append(
                    'nova-compute plugs ports (os-vif) on its own host, but '
                    'manages the remote member(s) %s over HTTPS: run one '
                    'nova-compute per member over its local socket for '
                    'networked servers' % ', '.join(remote))
        connection = self.conf.os_vif_ovs.ovsdb_connection
        bridge = self.conf.neutron.ovs_bridge
        try:
            if not ovsdb_has_bridge(connection, bridge):
                problems.append('Open vSwitch at %s has no integration '
                                'bridge %s ([neutron] ovs_bridge); is the '
                                'Neutron agent running?' % (connection,
                                                            bridge))
        except (OSError, ValueError) as e:
            problems.append('cannot ask Open vSwitch at %s ([os_vif_ovs] '
                            'ovsdb_connection): %s. os-vif plugs ports '
                            'there; point the option at the OVSDB server '
                            '(e.g. unix:/var/run/openvswitch/db.sock)'
                            % (connection, e))
        if problems:
            return Result(Code.FAILURE, '; '.join(problems) + '.')
        return Result(Code.SUCCESS, 'Open vSwitch at %s has bridge %s.'
                      % (connection, bridge))

    def _check_clocks(self):
        failed = self._needs_lxd()
        if failed:
            return failed
        offsets = {}
        try:
            if self.lxd.endpoint.startswith('https://'):
                for member, url in sorted(self.lxd.member_urls().items()):
                    theirs, ours = self.lxd.server_date(url)
                    offsets[member] = theirs - ours
            if not offsets:
                theirs, ours = self.lxd.server_date()
                member = self.lxd.environment.get('server_name', 'LXD')
                offsets[member] = theirs - ours
        except errors.LXDError as e:
            return Result(Code.WARNING, 'Could not read every member\'s '
                          'clock: %s' % e)
        result = skew_result(offsets)
        if (result.code == Code.SUCCESS and self.lxd.clustered and
                not self.lxd.endpoint.startswith('https://')):
            result.details += (' Other members are compared from their own '
                               'hosts (run this check there), or from here '
                               'with an https:// [lxd] endpoint.')
        return result

    _upgrade_checks = tuple((name, _lxd_may_fail(check)) for name, check in (
        ('LXD reachable', _check_reachable),
        ('LXD trusts this client', _check_trusted),
        ('LXD server certificate', _check_certificate),
        ('LXD version and API extensions', _check_version),
        ('Members and Nova hosts', _check_members),
        ('LXD project', _check_project),
        ('Storage pool', _check_pool),
        ('GPU runtime', _check_gpus),
        ('Networking (os-vif, Open vSwitch)', _check_network),
        ('Clock skew', _check_clocks),
    ))


def _config(argv):
    conf = cfg.ConfigOpts()
    lxd_conf.register_opts(conf)
    netconf.register_opts(conf)
    conf.register_opts(neutron_conf.neutron_opts, group='neutron')
    conf.register_opts(os_vif_ovs.OvsPlugin.CONFIG_OPTS, group='os_vif_ovs')

    def add_parsers(subparsers):
        for name in ('check', 'upgrade'):
            parser = subparsers.add_parser(
                name, help='run the checks' if name == 'check' else
                'as nova-status: "upgrade check"')
            if name == 'upgrade':
                parser.add_argument('check', choices=['check'])
            parser.add_argument('--json', action='store_true',
                                help='print the results as JSON')

    conf.register_cli_opt(cfg.SubCommandOpt('command', handler=add_parsers))
    # Without --config-file: oslo.config's usual places, as nova-compute
    # (/etc/nova/nova.conf, ~/.nova/nova.conf).
    conf(argv, project='nova', prog='nova-lxd-status')
    return conf


def main(argv=None):
    """Exit code as nova-status: the worst result, 255 on an error."""
    try:
        conf = _config(sys.argv[1:] if argv is None else argv)
    except cfg.Error as e:
        sys.stderr.write('nova-lxd-status: %s\n' % e)
        return 255
    # Checks.check() prints JSON when conf.command.json is set.
    upgradecheck.CONF = conf
    try:
        return Checks(conf).check()
    except Exception:
        print('Error:\n%s' % traceback.format_exc())
        return 255


if __name__ == '__main__':
    sys.exit(main())
