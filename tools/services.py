"""Nova's in-process services (API, conductor, scheduler, compute manager,
real Placement) with this driver over the LXD test bed.

Nova's own functional-test harness: the functional tests build on it
(tests/functional/base.py), and so do tools/demo_main.py and the
benchmarks. Whoever imports this has let Nova patch eventlet first
(tests/__init__.py, tools/demo_main.py).
"""

import os
import sys

import fixtures

from nova.tests.functional import integrated_helpers

from nova_lxd import conf  # noqa: F401 (registers [lxd])
from tools import testbed


class LXDServicesTestCase(integrated_helpers.ProviderUsageBaseTestCase):

    compute_driver = 'lxd.LXDDriver'
    # Exercise Nova's real local node identity file (compute_id).
    STUB_COMPUTE_ID = False
    # True: [lxd] storage_pool is the test bed's pool that enforces sizes.
    quota_pool = False

    def setUp(self):
        self.bed = testbed.Testbed()
        # Nova's wheel installs api-paste.ini under sys.prefix; the API
        # fixture is built in super().setUp().
        self.flags(api_paste_config=os.path.join(
            sys.prefix, 'etc', 'nova', 'api-paste.ini'), group='wsgi')
        super().setUp()
        # Each test is a fresh host: empty state_path, nothing cached.
        self.flags(state_path=self.useFixture(fixtures.TempDir()).path)
        self.useFixture(fixtures.MonkeyPatch(
            'nova.virt.node.LOCAL_NODE_UUID', None))
        # The test bed's default pool is dir: sizes are not enforced
        # there, which nova-compute accepts only when told.
        self.flags(storage_pool=self.bed.quota_pool if self.quota_pool
                   else self.bed.pool, allow_dir_pool=not self.quota_pool,
                   group='lxd')
        # Whatever a test leaves (a failed assertion skips its deletes),
        # Nova's containers, their volumes and imported images go with it.
        self.addCleanup(self.bed.remove_nova_volumes)
        self.addCleanup(self.bed.remove_imported_images)
        self.addCleanup(self.bed.remove_nova_containers)
        # First of these (cleanups run last first): a daemon that died is
        # named, and back before the removals above need it.
        self.addCleanup(self.bed.check_daemons)

    def _wait_for_server_parameter(self, server, expected_params,
                                   max_retries=60, **kwargs):
        # Nova's default (5 s) is short for a first boot on a loaded
        # 2-core machine: image copy to the member, id shifting of the
        # unprivileged root. Give real LXD 30 s.
        return super()._wait_for_server_parameter(
            server, expected_params, max(max_retries, 60), **kwargs)

    def use_https(self, members=('*',)):
        self.flags(endpoint=self.bed.endpoint,
                   client_cert=self.bed.client_cert,
                   client_key=self.bed.client_key,
                   server_cert=self.bed.server_cert,
                   members=list(members), group='lxd')

    def use_socket(self, member, members=()):
        self.flags(endpoint=self.bed.socket(member), members=list(members),
                   group='lxd')
