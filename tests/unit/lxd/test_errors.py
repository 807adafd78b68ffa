"""What of LXD's words reaches a tenant's fault."""

from nova import test

from nova_lxd.lxd import errors


class TenantSafeTest(test.NoDBTestCase):

    def test_member_paths_are_left_out(self):
        for said in (
                'Missing source path "/var/lib/lxd/storage-pools/default/'
                'containers/instance-00000001/rootfs"',
                'Failed to mount /srv/lxd/disks/pool.img: busy',
                "open /var/snap/lxd/common/lxd/logs/c1/console.log: no "
                "such file"):
            safe = errors.tenant_safe(said)
            self.assertIn('<host path>', safe)
            self.assertNotIn('/lxd', safe)

    def test_device_nodes_api_paths_and_words_stay(self):
        said = ('Failed to start device "nova-volume-1": /dev/loop7 at '
                '/dev/vdb; see /1.0/operations/abc; 1/2 done')
        self.assertEqual(said, errors.tenant_safe(said))

    def test_the_message_is_safe_the_reason_whole(self):
        e = errors.LXDError(reason='Missing source path /var/lib/lxd/x/y')
        self.assertEqual('LXD: Missing source path <host path>', str(e))
        self.assertEqual('Missing source path /var/lib/lxd/x/y',
                         e.lxd_reason)
        self.assertIsInstance(errors.LXDNotFound(reason='/a/b'),
                              errors.LXDError)
