"""The DevStack plugin's phases, run with DevStack's own functions.

DevStack (``functions``, ``functions-common``, ``inc/``) comes from the
snapshot in ``../shared/third-party/devstack`` beside the repository (or
``NOVA_LXD_DEVSTACK_DIR``), copied into a temporary folder. The plugin
runs there as stack.sh, unstack.sh and clean.sh run it (settings, then
``plugin.sh <mode> [phase]``), with DevStack's real iniset, install_package,
setup_develop and is_service_enabled; the host commands under them (apt-get,
systemctl, snap, lxc, lxd, openstack, pip) are stand-ins
(tests/devstack/fake_host.py) that record their calls and keep a small
LXD state. The tests read the nova.conf, glance-api.conf and tempest.conf
the plugin wrote.
"""

import configparser
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

import fixtures
import testtools

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
HERE = os.path.dirname(os.path.abspath(__file__))
DEVSTACK = os.environ.get('NOVA_LXD_DEVSTACK_DIR') or os.path.join(
    os.path.dirname(REPO), 'shared', 'third-party', 'devstack')
GPU_FIXTURE = os.path.join(REPO, 'tests', 'unit', 'data', 'gpu',
                           'lxd-resources-gpu-aspeed-rtx2080ti-gtx1080ti.json')
FAKES = ('lxc', 'lxd', 'apt-get', 'systemctl', 'snap', 'usermod',
         'groupadd', 'openstack')
HOST = 'devstack-host'

# What stack.sh has done before a plugin phase, as far as the plugin reads
# it (stackrc, lib/nova, lib/glance, lib/tempest set these).
PRELUDE = r'''
set -o errexit
os_VENDOR=%(vendor)s os_PACKAGE=deb os_RELEASE=%(release)s os_CODENAME=x
source "$SANDBOX/devstack/functions"
# stack.sh's own
function echo_summary { echo "summary: $*"; }
DEST=$SANDBOX/opt/stack DATA_DIR=$SANDBOX/opt/stack/data
STACK_USER=$(id -un) REGION_NAME=RegionOne
GLOBAL_VENV=True DEVSTACK_VENV=$SANDBOX/venv PYTHON3_VERSION=3
ENABLED_SERVICES=%(services)s VIRT_DRIVER=%(virt_driver)s LXD_GROUP=lxd
NOVA_CONF_DIR=$SANDBOX/etc/nova NOVA_CONF=$SANDBOX/etc/nova/nova.conf
NOVA_CPU_CONF=$SANDBOX/etc/nova/nova-cpu.conf
GLANCE_API_CONF=$SANDBOX/etc/glance/glance-api.conf
TEMPEST_CONFIG=$SANDBOX/opt/stack/tempest/etc/tempest.conf
declare -A GITDIR
GITDIR[nova-lxd]=%(repo)s
function hostname { echo %(host)s; }
%(localrc)s
source %(repo)s/devstack/override-defaults
source %(repo)s/devstack/settings
'''

SERVICES = 'g-api,n-api,n-cpu,n-cond,n-sch,placement-api,tempest'
# stack.sh starts nova-compute between post-config and extra; lib/nova's
# start_nova_compute first makes nova-cpu.conf a copy of nova.conf (bug
# 1802143), which is all of it the plugin depends on.
START_NOVA_COMPUTE = 'start nova-compute'


def _ini(path):
    # No DEFAULT section magic: [DEFAULT] is a section like the others.
    parser = configparser.ConfigParser(interpolation=None,
                                       default_section='no default')
    with open(path) as f:
        parser.read_file(f)
    return parser


class Sandbox(object):
    """A temporary DevStack host.

    DevStack's functions, stand-in host commands, and the config files
    DevStack wrote before the plugin's phases.
    """

    def __init__(self, folder, fakes=FAKES):
        if not os.path.isfile(os.path.join(DEVSTACK, 'functions-common')):
            raise AssertionError(
                'DevStack is not at %s: the test runs the plugin with '
                'DevStack\'s own functions from ../shared/third-party/'
                'devstack beside the repository (or set '
                'NOVA_LXD_DEVSTACK_DIR to a DevStack checkout).' % DEVSTACK)
        self.sandbox = folder
        os.makedirs(os.path.join(folder, 'devstack'))
        for name in ('functions', 'functions-common', 'inc'):
            src = os.path.join(DEVSTACK, name)
            dst = os.path.join(folder, 'devstack', name)
            if os.path.isdir(src):
                shutil.copytree(src, dst)
            else:
                shutil.copy(src, dst)
        self.fake = os.path.join(folder, 'host')
        self.bin = os.path.join(folder, 'bin')
        venv_bin = os.path.join(folder, 'venv', 'bin')
        for path in (self.fake, self.bin, venv_bin):
            os.makedirs(path)
        for name in tuple(fakes) + ('pip',):
            self._script(os.path.join(venv_bin if name == 'pip' else
                                      self.bin, name),
                         'exec "%s" "%s" %s "$@"' % (
                             sys.executable,
                             os.path.join(HERE, 'fake_host.py'), name))
        # sudo as root: drop its options, keep VAR=value, run the rest.
        self._script(os.path.join(self.bin, 'sudo'),
                     'while [ "${1#-}" != "$1" ]; do shift; done\n'
                     'exec env "$@"')
        self._script(os.path.join(venv_bin, 'nova-lxd-gpus'),
                     'echo "$*" >"$FAKE_HOST_DIR/gpus.args"\n'
                     'cat "$FAKE_HOST_DIR/gpus.json"')
        self._gpu_report()
        subprocess.run(
            ['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
             'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
             '-subj', '/CN=fake lxd', '-keyout',
             os.path.join(self.fake, 'server.key'), '-out',
             os.path.join(self.fake, 'server.crt')],
            check=True, capture_output=True)
        for conf, text in (
                ('etc/nova/nova.conf', '[DEFAULT]\ndebug = True\n'),
                # A previous stack's: the next start replaces it.
                ('etc/nova/nova-cpu.conf', '[DEFAULT]\nold = True\n'),
                ('etc/glance/glance-api.conf', '[DEFAULT]\ndebug = True\n'),
                ('opt/stack/tempest/etc/tempest.conf',
                 '[compute-feature-enabled]\nvnc_console = True\n'
                 'resize = False\n')):
            self.write(conf, text)

    def _script(self, path, body):
        with open(path, 'w') as f:
            f.write('#!/bin/bash\n' + body + '\n')
        os.chmod(path, 0o755)

    def _gpu_report(self):
        """What the real nova-lxd-gpus says of a recorded member."""
        command = os.path.join(os.path.dirname(sys.executable),
                               'nova-lxd-gpus')
        done = subprocess.run(
            [command, '--resources', GPU_FIXTURE, '--member', HOST,
             '--json', '--config-file', os.devnull],
            check=True, capture_output=True, text=True)
        with open(os.path.join(self.fake, 'gpus.json'), 'w') as f:
            f.write(done.stdout)

    def write(self, relative, text):
        path = os.path.join(self.sandbox, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w') as f:
            f.write(text)

    def read(self, relative):
        with open(self.path(relative)) as f:
            return f.read()

    def path(self, relative):
        return os.path.join(self.sandbox, relative)

    def run_plugin(self, calls, localrc='', vendor='Debian', release='12',
                   services=SERVICES, virt_driver='lxd', env=None, after=''):
        """Source settings, then plugin.sh once per (mode, phase).

        ``after``: shell lines run at the end, in the same shell.
        """
        script = PRELUDE % {
            'vendor': vendor, 'release': release, 'services': services,
            'virt_driver': virt_driver, 'repo': REPO, 'host': HOST,
            'localrc': localrc}
        for mode_phase in calls:
            if mode_phase == START_NOVA_COMPUTE:
                script += 'cp "$NOVA_CONF" "$NOVA_CPU_CONF"\n'
                continue
            script += 'source %s/devstack/plugin.sh %s\n' % (REPO,
                                                             mode_phase)
        script += after + '\n'
        env = dict(os.environ, SANDBOX=self.sandbox,
                   FAKE_HOST_DIR=self.fake,
                   PATH=self.bin + os.pathsep + os.environ['PATH'],
                   **(env or {}))
        return subprocess.run(['bash', '-c', script], env=env,
                              capture_output=True, text=True, timeout=300)

    def calls(self, command=None):
        if not os.path.exists(os.path.join(self.fake, 'calls')):
            return []
        with open(os.path.join(self.fake, 'calls')) as f:
            found = [json.loads(line) for line in f]
        return [c for c in found if command is None or c[0] == command]

    def lxd_state(self):
        with open(os.path.join(self.fake, 'lxd.json')) as f:
            return json.load(f)

    def set_lxd_state(self, **changes):
        state = self.lxd_state() if os.path.exists(
            os.path.join(self.fake, 'lxd.json')) else {
            'pools': [], 'projects': ['default'], 'certificates': {},
            'clustered': False, 'instances': {}, 'images': {},
            'volumes': {}, 'profiles': {}, 'preseeds': []}
        state.update(changes)
        with open(os.path.join(self.fake, 'lxd.json'), 'w') as f:
            json.dump(state, f)


STACK = ['stack install', 'stack post-config', START_NOVA_COMPUTE,
         'stack extra', 'stack test-config']


def _fingerprint(pem):
    done = subprocess.run(
        ['openssl', 'x509', '-in', pem, '-noout', '-fingerprint',
         '-sha256'], check=True, capture_output=True, text=True)
    return done.stdout.split('=', 1)[1].strip().replace(':', '').lower()


def _user():
    return subprocess.run(['id', '-un'], capture_output=True,
                          text=True).stdout.strip()


class PluginTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.box = Sandbox(self.useFixture(fixtures.TempDir()).path)

    def run_plugin(self, calls, check=True, **kwargs):
        done = self.box.run_plugin(calls, **kwargs)
        if check and done.returncode:
            self.fail('plugin failed (%d):\n%s\n%s' % (
                done.returncode, done.stdout[-3000:], done.stderr[-3000:]))
        return done


class DebianStackTest(testtools.TestCase):
    """One whole stack on Debian 12 with the defaults (run once)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.folder = tempfile.mkdtemp(prefix='nova-lxd-devstack-')
        try:
            cls.box = Sandbox(cls.folder)
        except Exception:
            shutil.rmtree(cls.folder)
            raise
        cls.done = cls.box.run_plugin(
            STACK, localrc='NOVA_LXD_GPU_MODES=10de:1e04=shared:4')

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.folder)
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        if self.done.returncode:
            self.fail('stack failed (%d):\n%s\n%s' % (
                self.done.returncode, self.done.stdout[-3000:],
                self.done.stderr[-3000:]))

    def test_installs_the_lxd_package_and_this_project(self):
        installs = [c[1:] for c in self.box.calls('apt-get')
                    if 'install' in c]
        packages = {p for c in installs for p in c[c.index('install') + 1:]}
        self.assertTrue({'lxd', 'lxd-client', 'busybox-static',
                         'openssl'} <= packages, installs)
        self.assertEqual([], [c for c in self.box.calls('snap')
                              if 'install' in c])
        self.assertIn(['systemctl', 'enable', 'lxd.socket', 'lxd.service'],
                      self.box.calls('systemctl'))
        # Not clustered: no restart.
        self.assertNotIn(['systemctl', 'restart', 'lxd.service'],
                         self.box.calls('systemctl'))
        self.assertIn(['usermod', '-a', '-G', 'lxd', _user()],
                      self.box.calls('usermod'))
        (pip,) = self.box.calls('pip')
        self.assertEqual(['-e', REPO], pip[-2:])

    def test_initialises_lxd_project_and_trusted_certificate(self):
        state = self.box.lxd_state()
        (preseed,) = state['preseeds']
        self.assertEqual([{'name': 'default', 'driver': 'dir',
                           'config': {}}], preseed['storage_pools'])
        self.assertEqual({'images.auto_update_interval': '0'},
                         preseed['config'])
        self.assertNotIn('cluster', preseed)
        self.assertIn('nova', state['projects'])
        self.assertEqual(['features.images=true', 'features.profiles=true',
                          'features.storage.volumes=true'],
                         state['project_config']['nova'])
        certs = self.box.path('etc/nova/lxd')
        self.assertEqual(
            {_fingerprint(os.path.join(certs, 'client.crt')):
             'nova-lxd-' + HOST}, state['certificates'])
        self.assertEqual(0o600, os.stat(os.path.join(
            certs, 'client.key')).st_mode & 0o777)
        self.assertEqual(self.box.read('host/server.crt').strip(),
                         self.box.read('etc/nova/lxd/server.crt').strip())

    def test_writes_nova_cpu_conf(self):
        # What nova-compute reads: nova.conf as DevStack copied it when it
        # started nova-compute, after post-config.
        cpu = _ini(self.box.path('etc/nova/nova-cpu.conf'))
        self.assertEqual({'debug': 'True',     # DevStack's, kept
                          'compute_driver': 'lxd.LXDDriver',
                          'allow_resize_to_same_host': 'True'},
                         dict(cpu['DEFAULT']))
        self.assertEqual({
            'endpoint': '/var/lib/lxd/unix.socket',
            'project': 'nova',
            'storage_pool': 'default',
            'allow_privileged': 'False',
            'allow_nesting': 'False',
            'allow_dir_pool': 'True',
            'gpu_modes': '10de:1e04=shared:4',
        }, dict(cpu['lxd']))

    def test_serial_console_on_by_default(self):
        # DevStack's lib/nova writes [serial_console] into nova-cpu.conf
        # and tempest's flag when n-sproxy runs or NOVA_SERIAL_ENABLED.
        tempest = _ini(self.box.path('opt/stack/tempest/etc/tempest.conf'))
        self.assertEqual(
            'True', tempest['compute-feature-enabled']['serial_console'])

    def test_glance_defaults_are_left_alone(self):
        # Glance's default format lists hold raw and bare.
        self.assertEqual('[DEFAULT]\ndebug = True\n',
                         self.box.read('etc/glance/glance-api.conf'))

    def test_extra_uploads_a_built_lxd_image(self):
        (create,) = [c for c in self.box.calls('openstack')
                     if 'image' in c and 'create' in c]
        self.assertEqual('nova-lxd-busybox', create[-1])
        for option, value in (('--disk-format', 'raw'),
                              ('--container-format', 'bare')):
            self.assertEqual(value, create[create.index(option) + 1])
        tarball = create[create.index('--file') + 1]
        self.assertTrue(tarball.startswith(self.folder))
        with tarfile.open(tarball) as image:
            names = image.getnames()
            metadata = image.extractfile('metadata.yaml').read().decode()
        self.assertIn('rootfs/sbin/init', names)
        self.assertIn('os: busybox', metadata)

    def test_extra_creates_example_and_gpu_flavors(self):
        flavors = {c[c.index('create') + 1]: c for c in self.box.calls(
            'openstack') if 'flavor' in c and 'create' in c}
        self.assertEqual(
            ['lxd.gpu.10de-1b06.whole', 'lxd.gpu.10de-1e04.whole',
             'lxd.isolated', 'lxd.medium', 'lxd.small', 'lxd.tiny'],
            sorted(flavors))
        gpu = flavors['lxd.gpu.10de-1e04.whole']
        properties = [gpu[i + 1] for i, a in enumerate(gpu)
                      if a == '--property']
        self.assertEqual(['resources:PGPU=1',
                          'trait:CUSTOM_GPU_10DE_1E04=required',
                          'lxd:nvidia_runtime=true'], properties)
        self.assertEqual('--json --member %s --config-file %s' % (
            HOST, self.box.path('etc/nova/nova-cpu.conf')),
            self.box.read('host/gpus.args').strip())

    def test_test_config_writes_tempest_flags(self):
        tempest = _ini(self.box.path('opt/stack/tempest/etc/tempest.conf'))
        flags = _ini(os.path.join(REPO, 'devstack', 'tempest-flags.ini'))
        for section in flags.sections():
            self.assertEqual(dict(flags[section]), {
                k: v for k, v in tempest[section].items()
                if k in flags[section]}, section)
        # DevStack's own values are replaced.
        self.assertEqual('False',
                         tempest['compute-feature-enabled']['vnc_console'])
        self.assertEqual('True',
                         tempest['compute-feature-enabled']['resize'])


class PluginPhasesTest(PluginTestCase):
    """Single phases, other layouts, unstack and clean."""

    def test_stack_again_changes_nothing_in_lxd(self):
        self.run_plugin(['stack post-config'])
        first = self.box.lxd_state()
        self.run_plugin(['stack post-config'])
        self.assertEqual(first, self.box.lxd_state())

    def test_glance_format_lists_get_raw_and_bare(self):
        self.box.write('etc/glance/glance-api.conf',
                       '[image_format]\ndisk_formats = qcow2,iso\n'
                       'container_formats = ovf,bare\n')
        self.run_plugin(['stack post-config'])
        glance = _ini(self.box.path('etc/glance/glance-api.conf'))
        self.assertEqual('qcow2,iso,raw',
                         glance['image_format']['disk_formats'])
        self.assertEqual('ovf,bare',
                         glance['image_format']['container_formats'])

    def test_existing_lxd_pool_and_project_are_used_not_made(self):
        self.box.set_lxd_state(pools=['default'],
                               projects=['default', 'nova'])
        self.run_plugin(['stack post-config'])
        self.assertEqual([], self.box.lxd_state()['preseeds'])
        self.run_plugin(['clean'])
        state = self.box.lxd_state()
        self.assertEqual(['default'], state['pools'])
        self.assertIn('nova', state['projects'])
        self.assertEqual({}, state['certificates'])

    def test_ubuntu_gets_the_snap(self):
        self.run_plugin(['stack install', 'stack post-config',
                         START_NOVA_COMPUTE],
                        vendor='Ubuntu', release='24.04')
        self.assertIn(['snap', 'install', 'lxd', '--channel=5.0/stable'],
                      self.box.calls('snap'))
        packages = {p for c in self.box.calls('apt-get') for p in c}
        self.assertNotIn('lxd', packages)
        self.assertIn('snapd', packages)
        cpu = _ini(self.box.path('etc/nova/nova-cpu.conf'))
        self.assertEqual('/var/snap/lxd/common/lxd/unix.socket',
                         cpu['lxd']['endpoint'])

    def test_join_a_cluster_over_https(self):
        self.run_plugin(['stack post-config', START_NOVA_COMPUTE],
                        localrc='NOVA_LXD_CLUSTER_ADDRESS=192.0.2.7:8443\n'
                                'NOVA_LXD_CLUSTER_TOKEN=c2VjcmV0\n'
                                'NOVA_LXD_ENDPOINT=https\n'
                                'NOVA_LXD_MEMBERS=*')
        (preseed,) = self.box.lxd_state()['preseeds']
        self.assertEqual({'cluster': {
            'enabled': True, 'server_name': HOST,
            'server_address': '192.0.2.7:8443',
            'cluster_token': 'c2VjcmV0'}}, preseed)
        lxd = _ini(self.box.path('etc/nova/nova-cpu.conf'))['lxd']
        certs = self.box.path('etc/nova/lxd')
        self.assertEqual('https://192.0.2.7:8443', lxd['endpoint'])
        self.assertEqual(os.path.join(certs, 'client.crt'),
                         lxd['client_cert'])
        self.assertEqual(os.path.join(certs, 'client.key'),
                         lxd['client_key'])
        self.assertEqual(os.path.join(certs, 'server.crt'),
                         lxd['server_cert'])
        # Not the names of the files where stack.sh runs (DevStack's
        # iniset echoes values unquoted).
        self.assertEqual('*', lxd['members'])
        # LXD 5.0.2 schedules CPUs only once restarted as a member.
        self.assertIn(['systemctl', 'restart', 'lxd.service'],
                      self.box.calls('systemctl'))

    def test_start_a_cluster(self):
        self.run_plugin(['stack post-config'],
                        localrc='NOVA_LXD_CLUSTER=True\n'
                                'NOVA_LXD_CLUSTER_ADDRESS=192.0.2.7:8443\n'
                                'NOVA_LXD_STORAGE_DRIVER=btrfs\n'
                                'NOVA_LXD_STORAGE_SIZE=20GiB')
        (preseed,) = self.box.lxd_state()['preseeds']
        self.assertEqual({'enabled': True, 'server_name': HOST},
                         preseed['cluster'])
        self.assertEqual('192.0.2.7:8443',
                         preseed['config']['cluster.https_address'])
        self.assertEqual([{'name': 'default', 'driver': 'btrfs',
                           'config': {'size': '20GiB'}}],
                         preseed['storage_pools'])
        self.assertIn(['systemctl', 'restart', 'lxd.service'],
                      self.box.calls('systemctl'))

    def test_newer_lxd_is_not_restarted(self):
        self.run_plugin(['stack post-config'],
                        localrc='NOVA_LXD_CLUSTER=True\n'
                                'NOVA_LXD_CLUSTER_ADDRESS=192.0.2.7:8443',
                        env={'FAKE_LXD_VERSION': '5.21.1'})
        self.assertTrue(self.box.lxd_state()['clustered'])
        self.assertNotIn(['systemctl', 'restart', 'lxd.service'],
                         self.box.calls('systemctl'))

    def test_cluster_without_address_stops_with_a_message(self):
        done = self.run_plugin(['stack post-config'], check=False,
                               localrc='NOVA_LXD_CLUSTER=True')
        self.assertNotEqual(0, done.returncode)
        self.assertIn('NOVA_LXD_CLUSTER_ADDRESS (host:port) is needed',
                      done.stdout + done.stderr)

    def test_other_virt_driver_stops_with_a_message(self):
        done = self.run_plugin(['stack install'], check=False,
                               virt_driver='libvirt')
        self.assertNotEqual(0, done.returncode)
        self.assertIn('needs VIRT_DRIVER=lxd', done.stdout + done.stderr)

    def test_api_only_host_installs_the_package_not_lxd(self):
        # nova-api validates lxd: extra specs with this package.
        self.run_plugin(['stack install', 'stack post-config'],
                        services='n-api,g-api')
        self.assertEqual(1, len(self.box.calls('pip')))
        self.assertEqual([], self.box.calls('lxd') + self.box.calls('lxc'))
        api = _ini(self.box.path('etc/nova/nova.conf'))
        self.assertNotIn('lxd', api)
        self.assertNotIn('compute_driver', api['DEFAULT'])

    def serial_console_services(self, **kwargs):
        done = self.run_plugin([], after='echo "$NOVA_SERIAL_ENABLED '
                               '$ENABLED_SERVICES"', **kwargs)
        serial, services = done.stdout.split()[-2:]
        return serial, set(services.split(','))

    def test_serial_console_proxy_runs_beside_nova_api(self):
        serial, services = self.serial_console_services()
        self.assertEqual('True', serial)
        self.assertIn('n-sproxy', services)
        serial, services = self.serial_console_services(services='n-cpu')
        self.assertEqual('True', serial)     # nova-compute's side
        self.assertNotIn('n-sproxy', services)

    def test_serial_console_can_be_turned_off(self):
        serial, services = self.serial_console_services(
            localrc='NOVA_SERIAL_ENABLED=False')
        self.assertEqual('False', serial)
        self.assertNotIn('n-sproxy', services)

    def test_unstack_stops_the_projects_containers(self):
        self.run_plugin(['stack post-config'])
        self.box.set_lxd_state(instances={
            'nova': {'instance-00000001': 'Running'},
            'default': {'other': 'Running'}})
        self.run_plugin(['unstack'])
        state = self.box.lxd_state()
        self.assertEqual({'instance-00000001': 'Stopped'},
                         state['instances']['nova'])
        self.assertEqual({'other': 'Running'}, state['instances']['default'])

    def test_clean_removes_what_stack_made(self):
        self.run_plugin(['stack post-config'])
        self.box.set_lxd_state(
            instances={'nova': {'instance-00000001': 'Running'},
                       'default': {'other': 'Running'}},
            images={'nova': ['fp1']},
            volumes={'nova': ['nova-ephemeral-x']},
            profiles={'nova': ['nova-gpu-nvidia']})
        self.run_plugin(['unstack'])
        self.run_plugin(['clean'])
        state = self.box.lxd_state()
        self.assertNotIn('nova', state['projects'])
        self.assertEqual([], state['pools'])
        self.assertEqual({}, state['certificates'])
        self.assertEqual({'other': 'Running'}, state['instances']['default'])
        self.assertFalse(os.path.exists(self.box.path('etc/nova/lxd')))
        self.assertFalse(os.path.exists(self.box.path(
            'opt/stack/data/nova-lxd')))
