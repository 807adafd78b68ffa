"""A guided tour: servers booted through Nova's API become LXD containers.

Run by tools/demo (which brings the test bed up and makes .venv). Nova's
API, conductor, scheduler, one compute service and a real Placement run
in this process, exactly as in the functional tests; the driver manages
both test-bed members over HTTPS, in an LXD project of its own.
"""

import argparse
import logging
import os
import sys
import time
from unittest import mock
import warnings

# Nova's eventlet patching must precede requests (as in tests/__init__.py);
# its deprecation notices are not for a newcomer's eyes.
warnings.filterwarnings('ignore', module='nova.monkey_patch')
logging.getLogger('nova.monkey_patch').setLevel(logging.ERROR)
from nova import monkey_patch  # noqa: E402
monkey_patch.patch()

from pylxd import client as pylxd_client  # noqa: E402
import testtools  # noqa: E402

from nova_lxd import conf  # noqa: E402,F401 (registers [lxd])
from tools import services  # noqa: E402
from tools import testbed  # noqa: E402

PROJECT = 'nova-lxd-demo'
PROJECT_CONFIG = {'features.images': 'true', 'features.profiles': 'false',
                  'features.storage.volumes': 'false'}
FLAVORS = (('tiny', 1, 128), ('small', 1, 256), ('medium', 2, 512))
SERVERS = (('demo-1', 'tiny'), ('demo-2', 'small'), ('demo-3', 'medium'),
           ('demo-4', 'small'))
BOOT_TIMEOUT = 120


class ProjectBed(testbed.Testbed):
    """The test bed as seen from one LXD project, its own images included.

    Whoever runs a case empties the project afterwards (``delete_project``),
    so the functional tests' clean-ups (for the default project) are off.
    """

    project = PROJECT

    def client(self, member=None):
        return pylxd_client.Client(
            endpoint=self.socket(member or self.members[0]),
            project=self.project)

    def ensure_project(self):
        """Create the project, or empty what an earlier run left in it."""
        default = testbed.Testbed.client(self)
        if not default.projects.exists(self.project):
            default.projects.create(self.project, config=PROJECT_CONFIG)
        self.purge()

    def purge(self):
        """Delete every container and image of the project (all ours)."""
        lxd = self.client()
        for instance in lxd.instances.all():
            if instance.status != 'Stopped':
                instance.stop(force=True, wait=True)
            instance.delete(wait=True)
        for image in lxd.images.all():
            image.delete(wait=True)

    def delete_project(self):
        self.purge()
        testbed.Testbed.client(self).projects.get(self.project).delete()

    def remove_nova_containers(self, *args, **kwargs):
        pass

    def remove_imported_images(self, *args, **kwargs):
        pass


class NovaLXD(services.LXDServicesTestCase):
    """Nova's in-process services with one compute for every member.

    Also three flavors and the busybox image in Glance.
    """

    project_bed = ProjectBed

    def setUp(self):
        # services.setUp builds the test bed and its clean-ups: ours.
        with mock.patch.object(testbed, 'Testbed', self.project_bed):
            super().setUp()
        self.use_https()
        self.flags(project=self.bed.project, group='lxd')
        self.compute = self.start_service('compute', host='compute-1')
        self.flavors = {
            name: self._create_flavor(name=name, vcpu=vcpu, memory_mb=mb,
                                      disk=1, ephemeral=0)
            for name, vcpu, mb in FLAVORS}
        tarball = self.bed.image_tarball()
        with open(tarball, 'rb') as data:
            self.image_id = self.glance.create(None, {
                'name': 'busybox', 'status': 'active', 'disk_format': 'raw',
                'container_format': 'bare', 'size': os.path.getsize(tarball),
                'properties': {'os_distro': 'busybox'}}, data=data)['id']
        self.active_at, self.failed = {}, set()
        self._on('instance.create.end', lambda uuid: self.active_at.setdefault(
            uuid, time.monotonic()))
        self._on('instance.create.error', self.failed.add)

    def _on(self, event, call):
        """Call ``call(instance uuid)`` when Nova sends ``event``.

        create.end comes right after Nova saved the server ACTIVE (10 ms
        measured): boots are timed without polling the API.
        """
        sub = self.notifier.fake_versioned_notifier.subscriptions[event]
        received = sub.received

        def hook(notification):
            call(notification['payload']['nova_object.data']['uuid'])
            received(notification)
        sub.received = hook

    def boot(self, name, flavor):
        """POST a server, wait until ACTIVE: (server, seconds it took)."""
        start = time.monotonic()
        server = self.api.post_server({'server': {
            'name': name, 'imageRef': self.image_id,
            'flavorRef': self.flavors[flavor], 'networks': 'none'}})
        uuid = server['id']
        while uuid not in self.active_at:
            if time.monotonic() - start > BOOT_TIMEOUT:
                self.fail('%s not ACTIVE after %ds' % (name, BOOT_TIMEOUT))
            if uuid in self.failed:
                # A failed build: rescheduled to the other member, or ERROR.
                server = self.api.get_server(uuid)
                if server['status'] == 'ERROR':
                    self.fail('%s went to ERROR: %s' % (name, server.get(
                        'fault', {}).get('message', 'no fault recorded')))
                time.sleep(0.5)
            time.sleep(0.01)
        return self.api.get_server(uuid), self.active_at[uuid] - start


class Demo(NovaLXD):

    keep = False

    def test_demo(self):
        bed = self.bed
        say('compute-1 manages LXD members %s through %s ([lxd] members = '
            '*), LXD project %s.' % (', '.join(bed.members), bed.endpoint,
                                     bed.project))
        say('Flavors: %s (disk 1 GB each); image "busybox" (%d KB) in '
            'Glance.' % (', '.join('%s %d vCPU/%d MB' % f for f in FLAVORS),
                         os.path.getsize(bed.image_tarball()) // 1024))
        say('\nBooting %d servers, one after another:' % len(SERVERS))
        booted = []
        for name, flavor in SERVERS:
            server, took = self.boot(name, flavor)
            booted.append((server, flavor, took))
            say('  %-7s %-7s ACTIVE in %.2f s%s' % (
                name, flavor, took, ' (includes importing the image into '
                'LXD)' if len(booted) == 1 else ''))
        self.show(booted)
        if self.keep:
            say('\nKept (--keep): the containers stay in LXD; Nova stops '
                'with this command. Look:')
            say('  LXD_DIR=%s lxc list --project %s' % (
                bed.lxd_dirs[bed.members[0]], bed.project))
            say('The next tools/demo removes them.')
            return
        for server, _, _ in booted:
            self._delete_server(server)
        left = bed.client().instances.all()
        self.assertEqual([], [i.name for i in left])
        say('\nDeleted the %d servers through the API; their containers '
            'are gone from LXD.' % len(booted))

    def show(self, booted):
        providers = {p['uuid']: p['name'] for p in self._get_all_providers()}
        rows = [('SERVER', 'STATUS', 'FLAVOR', 'MEMBER', '|',
                 'CONTAINER', 'STATUS', 'LOCATION', 'CPU', 'MEMORY', '|',
                 'ALLOCATIONS IN PLACEMENT')]
        for server, flavor, _ in booted:
            name = server['OS-EXT-SRV-ATTR:instance_name']
            found = self.bed.client().api.instances[name].get().json()[
                'metadata']
            allocations = ' '.join(
                '%s: %s' % (providers[rp], ' '.join(
                    '%s=%d' % kv for kv in sorted(a['resources'].items())))
                for rp, a in self._get_allocations_by_server_uuid(
                    server['id']).items())
            rows.append((
                server['name'], server['status'], flavor,
                server['OS-EXT-SRV-ATTR:hypervisor_hostname'], '|', name,
                found['status'], found['location'],
                found['config']['limits.cpu'],
                found['config']['limits.memory'], '|', allocations))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        say('\n%-*s|  %-*s|  %s' % (
            sum(widths[:4]) + 8, 'NOVA', sum(widths[5:10]) + 10,
            'LXD (as LXD reports it)', 'PLACEMENT'))
        for row in rows:
            say('  '.join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        say('\nPlacement, per member (used / capacity):')
        for rp, name in sorted(providers.items(), key=lambda p: p[1]):
            inventory = self.placement.get(
                '/resource_providers/%s/inventories' % rp).body[
                    'inventories']
            usages = self._get_provider_usages(rp)
            say('  %-6s %s' % (name, '  '.join(
                '%s %d/%d' % (rc, usages.get(rc, 0), int(
                    (inv['total'] - inv['reserved']) *
                    inv['allocation_ratio']))
                for rc, inv in sorted(inventory.items()))))


def say(text=''):
    print(text, flush=True)


class Outcome(testtools.TestResult):
    """Keeps the failure's details (traceback, Nova's captured log)."""

    details = None

    def addError(self, test, err=None, details=None):
        super().addError(test, err, details)
        self.details = details or {}

    addFailure = addError


def run_case(case):
    """Run one TestCase; None when it passed, else a short error text."""
    outcome = Outcome()
    # Nova's last words (thread pools closing) are not for a newcomer.
    logging.getLogger('nova.thread_pool_factory').setLevel(logging.WARNING)
    case.run(outcome)
    if outcome.wasSuccessful():
        return None
    details = outcome.details or {}
    text = details.get('traceback')
    log = details.get('pythonlogging:\'\'')
    lines = text.as_text().strip().splitlines() if text else ['unknown']
    problems = [line for line in (log.as_text().splitlines() if log else [])
                if ' ERROR ' in line or ' WARNING [nova' in line]
    return '\n'.join(problems[-15:] + ['', lines[-1]])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--keep', action='store_true',
                        help='leave the servers\' containers in LXD')
    args = parser.parse_args(argv)
    # Output goes to the terminal, not into the test's details.
    for name in ('OS_STDOUT_CAPTURE', 'OS_STDERR_CAPTURE'):
        os.environ.pop(name, None)
    try:
        bed = ProjectBed()
        bed.ensure_project()
    except Exception as e:
        sys.exit('tools/demo: the LXD test bed is not usable: %s' % e)
    Demo.keep = args.keep
    say('Starting Nova (API, conductor, scheduler, compute-1) and Placement '
        'in this process...')
    error = run_case(Demo('test_demo'))
    if not args.keep:
        try:
            bed.delete_project()
        except Exception as e:
            error = error or 'could not delete LXD project %s: %s' % (
                PROJECT, e)
    if error:
        sys.exit('\ntools/demo FAILED:\n%s' % error)
    if not args.keep:
        say('Removed LXD project %s with the image the driver imported '
            'into it.' % PROJECT)
    say('Done.')


if __name__ == '__main__':
    main()
