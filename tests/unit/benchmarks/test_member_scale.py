"""benchmarks/member_scale.py: the projection for a real cluster."""

import testtools

from benchmarks import member_scale

LISTING = ('GET', '/1.0/instances')
RESOURCES = ('GET', '/1.0/resources')


class LatencyTest(testtools.TestCase):

    def test_listing_on_a_line_over_the_members(self):
        found = member_scale.latency_at_members({
            2: {LISTING: 0.03, RESOURCES: 0.020},
            4: {LISTING: 0.05, RESOURCES: 0.030},
            8: {LISTING: 0.09, RESOURCES: 0.025}}, 100)
        self.assertAlmostEqual(0.01 + 0.01 * 100, found[LISTING])
        # One member asked: the median over the member counts.
        self.assertAlmostEqual(0.025, found[RESOURCES])

    def test_listing_not_below_the_largest_measured(self):
        found = member_scale.latency_at_members({
            2: {LISTING: 0.09}, 8: {LISTING: 0.03}}, 100)
        self.assertEqual(0.09, found[LISTING])

    def test_one_member_count(self):
        self.assertEqual({LISTING: 0.04}, member_scale.latency_at_members(
            {2: {LISTING: 0.04}}, 100))


class ProjectedTest(testtools.TestCase):

    def test_the_fake_latency_replaced_by_lxd_s(self):
        made = [RESOURCES, RESOURCES, LISTING]
        took = member_scale.projected(
            0.5, made, {RESOURCES: 0.03, LISTING: 0.2},
            {RESOURCES: 0.001, LISTING: 0.01})
        self.assertAlmostEqual(0.5 + 2 * 0.029 + 0.19, took)

    def test_a_kind_not_measured_on_lxd_stays_as_it_was(self):
        self.assertEqual(0.5, member_scale.projected(
            0.5, [RESOURCES], {}, {RESOURCES: 0.001}))
