"""benchmarks/api_boot.py: the steps of a boot, in order."""

import testtools

from benchmarks import api_boot


class TimelineTest(testtools.TestCase):

    def test_lxd_requests_are_one_step_whatever_they_name(self):
        self.assertEqual(
            'LXD: PATCH /instances/<instance> >',
            api_boot._generic('LXD: PATCH /instances/instance-0000000b >'))
        self.assertEqual(
            'LXD: GET /operations/<operation>/wait <',
            api_boot._generic('LXD: GET /operations/0ac4fd4c/wait <'))
        self.assertEqual(
            'LXD: GET /images/aliases/<alias> >',
            api_boot._generic('LXD: GET /images/aliases/nova-glance-23 >'))
        self.assertEqual('LXD: GET /instances >',
                         api_boot._generic('LXD: GET /instances >'))
        self.assertEqual('driver: spawn >',
                         api_boot._generic('driver: spawn >'))

    def test_medians_in_order_with_repeats_numbered(self):
        boot = [(0.0, 'driver: spawn >'),
                (0.1, 'LXD: GET /operations/a/wait >'),
                (0.4, 'LXD: GET /operations/a/wait <'),
                (0.5, 'LXD: GET /operations/b/wait >'),
                (0.7, 'LXD: GET /operations/b/wait <'),
                (0.7, 'driver: spawn <')]
        slower = [(t * 3, step) for t, step in boot]
        slowest = [(t * 5, step) for t, step in boot]
        self.assertEqual([
            (0.0, 'driver: spawn >'),
            (0.3, 'LXD: GET /operations/<operation>/wait >'),
            (1.2, 'LXD: GET /operations/<operation>/wait <'),
            (1.5, 'LXD: GET /operations/<operation>/wait > (2)'),
            (2.1, 'LXD: GET /operations/<operation>/wait < (2)'),
            (2.1, 'driver: spawn <')],
            [(round(t, 3), step) for t, step in
             api_boot.timeline([boot, slower, slowest])])
