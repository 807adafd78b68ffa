import importlib.machinery
import importlib.util
import io
import json
import os
import types
from unittest import mock

import testtools

from nova_lxd import constants
from nova_lxd.extra_specs import LXDSpecs
from nova_lxd.gpu import assignment
from nova_lxd.gpu import discovery
from nova_lxd.gpu import options
from tests.unit import data
from tests.unit import fakes

MEMBER = 'lxd1'
ME = 'aaaaaaaa-0000-0000-0000-000000000001'
OTHER = 'bbbbbbbb-0000-0000-0000-000000000002'
RP = 'rp-uuid-1'
ROOT_RP = 'rp-root'
H200_PROVIDER = 'lxd1_gpu_10de_2335'

# GPU extensions of an LXD 5.0 server; a CDI one (5.21, 6.x before 6.10);
# LXD 6.10, where nvidia.runtime and its extensions are gone.
LXD_5_0 = ('gpu_devices', 'gpu_mdev', 'gpu_sriov', 'gpu_mig',
           'gpu_mig_uuid', 'nvidia_runtime', 'nvidia_runtime_config')
LXD_CDI = LXD_5_0 + ('gpu_cdi',)
LXD_6_10 = ('gpu_devices', 'gpu_mdev', 'gpu_sriov', 'gpu_mig',
            'gpu_mig_uuid', 'gpu_cdi', 'gpu_mig_cdi')
PLAIN = assignment.shapes(LXD_5_0)


def _h200(count=8, slices=None, health=None):
    """``count`` H200s (constructed; NUMA 0 for the first half)."""
    facts = {}
    for i in range(count):
        pci = data.pci_of(i)
        facts[pci] = data.facts(pci, data.H200, (slices or {}).get(i, ()),
                                health=(health or {}).get(i, ()))
    return discovery.enrich(discovery.cards(data.nvidia_host(count)), facts)


def _a100_mig():
    """The real 7 x 1g.10gb A100 listing as NVML facts of one card."""
    ((_name, uuid, slices),) = data.nvidia_smi_l(
        data.load('nvidia-smi-L-A100-SXM4-80GB-7x1g.10gb.txt'))
    pci = data.pci_of(0)
    resources = {'gpu': {'cards': [data.nvidia_card(pci,
                                                    data.A100_SXM4_80)]}}
    facts = {pci: data.facts(pci, data.A100_SXM4_80, slices, uuid=uuid)}
    return discovery.enrich(discovery.cards(resources), facts), slices


def _rtx():
    """Real: RTX 2080 Ti (0000:03:00.0, NUMA 0), GTX 1080 Ti (82:00.0)."""
    return discovery.cards(data.load(data.ASPEED_RTX))


def _alloc(rc='PGPU', amount=1, rp=RP):
    return {rp: {'resources': {rc: amount}},
            ROOT_RP: {'resources': {'VCPU': 2, 'MEMORY_MB': 512}}}


def _container(name, devices, uuid=None, location=MEMBER, **extra):
    config = {'user.nova.instance_uuid': uuid} if uuid else {}
    return dict({'name': name, 'location': location, 'config': config,
                 'devices': devices, 'status': 'Running'}, **extra)


def _pci(address):
    return {'type': 'gpu', 'gputype': 'physical', 'pci': address}


def _assign(cards, allocations, instances=(), uuid=ME, provider=H200_PROVIDER,
            config=options.DEFAULT, shapes=PLAIN):
    return assignment.assign(
        cards, allocations, {RP: provider, ROOT_RP: MEMBER},
        assignment.ledger(list(instances), MEMBER), MEMBER, uuid, config,
        shapes)


def _pcis(devices):
    return [d['pci'] for d in devices]


class NamesTest(testtools.TestCase):

    def test_device_names(self):
        self.assertEqual('nova-gpu-3', constants.gpu_device_name(3))
        self.assertTrue(constants.is_gpu_device('nova-gpu-12'))
        self.assertFalse(constants.is_gpu_device('gpu0'))
        self.assertFalse(constants.is_gpu_device('nova-gpu-x'))
        self.assertEqual({'nova-gpu-0': {'a': 1}, 'nova-gpu-1': {'b': 2}},
                         assignment.device_map([{'a': 1}, {'b': 2}]))


class LedgerTest(testtools.TestCase):

    def test_nova_and_operator_containers(self):
        book = assignment.ledger([
            _container('instance-1', {
                'root': {'type': 'disk', 'path': '/'},
                'nova-gpu-0': _pci('0000:18:00.0'),
                'nova-gpu-1': {'type': 'gpu', 'gputype': 'mig',
                               'pci': '0000:28:00.0',
                               'mig.uuid': 'MIG-AB12'}}, uuid=ME),
            # An operator's container: not Nova's, still holds its card.
            _container('jupyter', {'gpu0': {'type': 'gpu',
                                            'pci': '38:00.0'}},
                       status='Stopped'),
            _container('elsewhere', {'g': _pci('0000:48:00.0')},
                       location='lxd2'),
        ], MEMBER)
        self.assertEqual(
            [('instance-1', 'nova-gpu-0', ME, '0000:18:00.0', None, True),
             ('instance-1', 'nova-gpu-1', ME, '0000:28:00.0', 'mig-ab12',
              True),
             ('jupyter', 'gpu0', None, '0000:38:00.0', None, False)],
            [(h.container, h.device, h.instance_uuid, h.pci, h.mig_uuid,
              h.nova) for h in book.holdings])
        self.assertEqual(['nova-gpu-0', 'nova-gpu-1'],
                         [h.device for h in book.of_instance(ME)])
        self.assertEqual(_pci('0000:18:00.0'), book.holdings[0].config())

    def test_mig_uuid_without_prefix_and_cdi_names(self):
        book = assignment.ledger([_container('c', {
            'a': {'type': 'gpu', 'gputype': 'mig', 'pci': '0000:18:00.0',
                  'mig.uuid': 'feb88891-0321'},
            'b': {'type': 'gpu', 'gputype': 'physical',
                  'id': 'nvidia.com/gpu=GPU-7FDA'},
            'c': {'type': 'gpu', 'id': 'nvidia.com/gpu=3'},
            'd': {'type': 'gpu', 'id': '2'},
            'e': {'type': 'gpu', 'gputype': 'mig',
                  'id': 'nvidia.com/mig=MIG-1aae'}})], MEMBER)
        self.assertEqual(
            [('mig-feb88891-0321', None, None, None),
             (None, 'gpu-7fda', None, None), (None, None, 3, None),
             (None, None, None, 2), ('mig-1aae', None, None, None)],
            [(h.mig_uuid, h.gpu_uuid, h.index, h.drm_id)
             for h in book.holdings])

    def test_wide_devices_are_reported_not_counted(self):
        book = assignment.ledger([_container('c', {
            'all': {'type': 'gpu'},
            'vendor': {'type': 'gpu', 'vendorid': '10de'},
            'cdi-all': {'type': 'gpu', 'id': 'nvidia.com/gpu=all'},
            'gi-ci': {'type': 'gpu', 'gputype': 'mig', 'pci': '18:00.0',
                      'mig.gi': '1', 'mig.ci': '0'},
            'bad': {'type': 'gpu', 'pci': 'not-an-address'},
            'vm-vf': {'type': 'gpu', 'gputype': 'sriov', 'pci': '18:00.1'},
        })], MEMBER)
        self.assertEqual((), book.holdings)
        self.assertEqual(['all', 'bad', 'cdi-all', 'gi-ci', 'vendor'],
                         [w[1] for w in book.wide])
        self.assertIn('grants every', dict((w[1], w[2])
                                           for w in book.wide)['all'])

    def test_nova_name_without_nova_uuid_is_not_novas(self):
        book = assignment.ledger([_container(
            'copy', {'nova-gpu-0': _pci('0000:18:00.0')})], MEMBER)
        (holding,) = book.holdings
        self.assertFalse(holding.nova)
        self.assertEqual([], book.of_instance(None))

    def test_profile_devices_count(self):
        book = assignment.ledger([_container(
            'c', {}, expanded_devices={'gpu': _pci('0000:18:00.0')})],
            MEMBER)
        self.assertEqual(['0000:18:00.0'], [h.pci for h in book.holdings])

    def test_standalone_location(self):
        book = assignment.ledger([_container(
            'c', {'g': _pci('0000:18:00.0')}, location='none')], MEMBER)
        self.assertEqual(1, len(book.holdings))


class WholeCardTest(testtools.TestCase):

    def test_real_fixture_lxd_5_0_shape(self):
        devices = _assign(_rtx(), _alloc(), provider='lxd1_gpu_10de_1e04')
        self.assertEqual([{'type': 'gpu', 'gputype': 'physical',
                           'pci': '0000:03:00.0'}], devices)

    def test_real_fixture_cdi_shape(self):
        devices = _assign(_rtx(), _alloc(), provider='lxd1_gpu_10de_1b06',
                          shapes=assignment.shapes(LXD_CDI, True))
        self.assertEqual(
            [{'type': 'gpu', 'gputype': 'physical',
              'id': 'nvidia.com/gpu=GPU-0d5164be-8a15-98be-72f2-'
                    '07f11106e43e'}], devices)

    def test_cdi_server_without_libraries_asked_keeps_pci(self):
        devices = _assign(_rtx(), _alloc(), provider='lxd1_gpu_10de_1e04',
                          shapes=assignment.shapes(LXD_CDI, False))
        self.assertEqual(['0000:03:00.0'], _pcis(devices))

    def test_cdi_name_needs_a_uuid(self):
        cards = discovery.cards({'gpu': {'cards': [dict(
            data.nvidia_card(data.pci_of(0)), nvidia={})]}})
        e = self.assertRaises(assignment.GPUAssignmentError, _assign, cards,
                              _alloc(), shapes=assignment.shapes(LXD_CDI,
                                                                 True))
        self.assertIn('CDI name needs its UUID', str(e))

    def test_server_before_gputype(self):
        devices = _assign(_rtx(), _alloc(), provider='lxd1_gpu_10de_1e04',
                          shapes=assignment.shapes(['gpu_devices']))
        self.assertEqual([{'type': 'gpu', 'pci': '0000:03:00.0'}], devices)

    def test_no_gpu_devices_extension(self):
        self.assertRaises(assignment.UnsupportedByLXD,
                          assignment.shapes, ['resources'])

    def test_pgpu_8_on_8_cards_gets_all(self):
        devices = _assign(_h200(), _alloc(amount=8))
        self.assertEqual(sorted(data.pci_of(i) for i in range(8)),
                         sorted(_pcis(devices)))

    def test_every_device_names_its_card(self):
        for shapes in (PLAIN, assignment.shapes(LXD_CDI, True),
                       assignment.shapes(['gpu_devices'])):
            for d in _assign(_h200(), _alloc(amount=8), shapes=shapes):
                self.assertEqual('gpu', d['type'])
                self.assertTrue({'pci', 'id', 'mig.uuid'} & set(d), d)

    def test_held_cards_not_given_twice(self):
        held = [_container('i-other', {'nova-gpu-0': _pci(data.pci_of(0))},
                           uuid=OTHER),
                _container('jupyter', {'gpu': _pci(data.pci_of(1))})]
        devices = _assign(_h200(3), _alloc(), held)
        self.assertEqual([data.pci_of(2)], _pcis(devices))
        held.append(_container('me', assignment.device_map(devices), ME))
        self.assertRaises(assignment.NotEnoughGPUs, _assign, _h200(3),
                          _alloc(), held, uuid='cccccccc')

    def test_non_gpu_allocations_ignored(self):
        self.assertEqual([], _assign(_h200(), {ROOT_RP: {'resources': {
            'VCPU': 4}}}))

    def test_unhealthy_card_not_picked(self):
        cards = _h200(2, health={0: ('XID 79 (fallen off the bus)',)})
        self.assertEqual([data.pci_of(1)],
                         _pcis(_assign(cards, _alloc())))

    def test_mig_card_not_given_as_whole(self):
        config = options.parse(modes=['%s=mig' % data.pci_of(0)])
        cards = _h200(2, slices={0: data.h200_slices(0)})
        self.assertEqual([data.pci_of(1)],
                         _pcis(_assign(cards, _alloc(), config=config)))


class NumaTest(testtools.TestCase):
    # 8 x H200: cards 0-3 on NUMA node 0, 4-7 on node 1.

    def _held(self, *indexes):
        return [_container('op%d' % i, {'g': _pci(data.pci_of(i))})
                for i in indexes]

    def test_two_cards_on_one_node_best_fit(self):
        devices = _assign(_h200(), _alloc(amount=2), self._held(0))
        # Node 0 has 3 free, node 1 has 4: the fuller one stays whole.
        self.assertEqual([data.pci_of(1), data.pci_of(2)], _pcis(devices))

    def test_four_cards_on_the_node_that_has_them(self):
        devices = _assign(_h200(), _alloc(amount=4), self._held(0))
        self.assertEqual([data.pci_of(i) for i in (4, 5, 6, 7)],
                         _pcis(devices))

    def test_spans_fewest_nodes_when_no_node_has_enough(self):
        devices = _assign(_h200(), _alloc(amount=5), self._held(0))
        self.assertEqual([data.pci_of(i) for i in (4, 5, 6, 7, 1)],
                         _pcis(devices))

    def test_top_up_prefers_the_node_already_used(self):
        mine = _container('me', {'nova-gpu-0': _pci(data.pci_of(5))}, ME)
        devices = _assign(_h200(), _alloc(amount=2), [mine])
        self.assertEqual([data.pci_of(5), data.pci_of(4)], _pcis(devices))


class IdempotenceTest(testtools.TestCase):

    def test_same_devices_again(self):
        cards = _h200()
        first = _assign(cards, _alloc(amount=3))
        mine = _container('me', assignment.device_map(first), ME,
                          status='Stopped')
        again = _assign(cards, _alloc(amount=3), [mine])
        self.assertEqual(first, again)
        self.assertEqual(assignment.device_map(first),
                         assignment.device_map(again))

    def test_held_devices_returned_as_written(self):
        # Written by pci before the server gained gpu_cdi: kept as is.
        mine = _container('me', {'nova-gpu-0': _pci(data.pci_of(2))}, ME)
        self.assertEqual([_pci(data.pci_of(2))],
                         _assign(_h200(), _alloc(), [mine],
                                 shapes=assignment.shapes(LXD_CDI, True)))

    def test_fewer_asked_than_held(self):
        mine = _container('me', {'nova-gpu-0': _pci(data.pci_of(2)),
                                 'nova-gpu-1': _pci(data.pci_of(3))}, ME)
        self.assertEqual([data.pci_of(2)],
                         _pcis(_assign(_h200(), _alloc(), [mine])))

    def test_operator_device_in_nova_container_is_not_reused(self):
        mine = _container('me', {'extra': _pci(data.pci_of(0))}, ME)
        self.assertEqual([data.pci_of(1)],
                         _pcis(_assign(_h200(2), _alloc(), [mine])))


class ExhaustionTest(testtools.TestCase):

    def test_message_names_member_model_asked_free(self):
        held = [_container('jupyter', {'g': _pci(data.pci_of(0))})]
        e = self.assertRaises(assignment.NotEnoughGPUs, _assign, _h200(2),
                              _alloc(amount=2), held)
        self.assertEqual((MEMBER, '10de:2335', 'PGPU', 2, 1),
                         (e.member, e.model, e.resource_class, e.asked,
                          e.free))
        text = str(e)
        for part in ('member lxd1', '2 x PGPU', 'GPU model 10de:2335',
                     H200_PROVIDER, '1 free', 'jupyter (0000:18:00.0)',
                     'Placement and LXD disagree'):
            self.assertIn(part, text)
        # What the tenant's fault says names no container and no member.
        self.assertEqual(
            '2 x PGPU of GPU model 10de:2335 asked, 1 free on the host: '
            'cards Placement counted as free are held by other containers; '
            'nova-compute\'s log names them', e.tenant_message)

    def test_unknown_provider(self):
        e = self.assertRaises(
            assignment.GPUAssignmentError, assignment.assign, _h200(),
            _alloc(), {}, assignment.ledger([], MEMBER), MEMBER, ME,
            options.DEFAULT, PLAIN)
        self.assertIn('resource provider %s' % RP, str(e))

    def test_provider_of_another_member(self):
        e = self.assertRaises(assignment.GPUAssignmentError, _assign,
                              _h200(), _alloc(),
                              provider='lxd2_gpu_10de_2335')
        self.assertIn('lxd2_gpu_10de_2335', str(e))


class SharedTest(testtools.TestCase):
    # The real RTX 2080 Ti, shared by two.
    CONFIG = options.parse(modes=['10de:1e04=shared:2'])

    def _assign(self, uuid, instances=(), amount=1):
        return _assign(_rtx(), _alloc('CUSTOM_SHARED_GPU', amount),
                       instances, uuid=uuid, provider='lxd1_gpu_10de_1e04',
                       config=self.CONFIG)

    def test_slots_then_full(self):
        first = self._assign(ME)
        second = self._assign(OTHER, [_container('a', {'nova-gpu-0': first[0]},
                                                 ME)])
        self.assertEqual(['0000:03:00.0'] * 2, _pcis(first + second))
        held = [_container('a', {'nova-gpu-0': first[0]}, ME),
                _container('b', {'nova-gpu-0': second[0]}, OTHER)]
        e = self.assertRaises(assignment.NotEnoughGPUs, self._assign,
                              'cccccccc', held)
        self.assertIn('CUSTOM_SHARED_GPU', str(e))

    def test_same_name_in_two_projects_takes_two_slots(self):
        # LXD's all-projects listing: one name, two containers.
        held = [_container('c', {'g': _pci('0000:03:00.0')}),
                _container('c', {'g': _pci('0000:03:00.0')},
                           project='team-a')]
        e = self.assertRaises(assignment.NotEnoughGPUs, self._assign, ME,
                              held)
        self.assertIn('team-a/c', str(e))

    def test_one_slot_per_card_per_instance(self):
        self.assertRaises(assignment.NotEnoughGPUs, self._assign, ME,
                          amount=2)

    def test_same_instance_again_keeps_its_slot(self):
        first = self._assign(ME)
        held = [_container('a', {'nova-gpu-0': first[0]}, ME),
                _container('b', {'nova-gpu-0': first[0]}, OTHER)]
        self.assertEqual(first, self._assign(ME, held))

    def test_least_loaded_card_first(self):
        config = options.parse(modes=['*=shared:4'])
        cards = _h200(2)
        held = [_container('a', {'g': _pci(data.pci_of(0))}, OTHER)]
        devices = _assign(cards, _alloc('CUSTOM_SHARED_GPU', 1), held,
                          config=config)
        self.assertEqual([data.pci_of(1)], _pcis(devices))


class MigTest(testtools.TestCase):
    CONFIG = options.parse(modes=['10de:20b2=mig'])
    PROVIDER = 'lxd1_gpu_10de_20b2'

    def _assign(self, amount, instances=(), shapes=PLAIN):
        cards, _ = _a100_mig()
        return _assign(cards, _alloc('CUSTOM_MIG_1G_10GB', amount),
                       instances, provider=self.PROVIDER, config=self.CONFIG,
                       shapes=shapes)

    def test_slices_of_the_profile(self):
        _, slices = _a100_mig()
        self.assertEqual(
            [{'type': 'gpu', 'gputype': 'mig', 'pci': data.pci_of(0),
              'mig.uuid': slices[i][1]} for i in (0, 1)],
            self._assign(2))

    def test_held_slice_skipped_even_without_prefix(self):
        _, slices = _a100_mig()
        held = [_container('op', {'m': {
            'type': 'gpu', 'gputype': 'mig', 'pci': data.pci_of(0),
            'mig.uuid': slices[0][1][len('MIG-'):]}})]
        self.assertEqual(slices[1][1], self._assign(1, held)[0]['mig.uuid'])

    def test_card_held_whole_blocks_its_slices(self):
        held = [_container('op', {'g': _pci(data.pci_of(0))})]
        self.assertRaises(assignment.NotEnoughGPUs, self._assign, 1, held)

    def test_seven_then_none(self):
        devices = self._assign(7)
        held = [_container('me', assignment.device_map(devices), ME)]
        self.assertRaises(assignment.NotEnoughGPUs, _assign,
                          _a100_mig()[0], _alloc('CUSTOM_MIG_1G_10GB', 1),
                          held, uuid=OTHER, provider=self.PROVIDER,
                          config=self.CONFIG)
        self.assertEqual(devices, self._assign(7, held))

    def test_server_without_mig_uuid(self):
        shapes = assignment.shapes(['gpu_devices', 'gpu_mdev', 'gpu_mig'])
        e = self.assertRaises(assignment.UnsupportedByLXD, self._assign, 1,
                              shapes=shapes)
        self.assertIn('gpu_mig_uuid', str(e))

    def test_h200_profiles_on_eight_cards(self):
        config = options.parse(modes=['10de:2335=mig'])
        cards = _h200(slices={i: data.h200_slices(i) for i in range(8)})
        devices = _assign(cards, _alloc('CUSTOM_MIG_1G_18GB', 3),
                          config=config)
        self.assertEqual([data.pci_of(0)] * 3, _pcis(devices))
        self.assertEqual(3, len({d['mig.uuid'] for d in devices}))


def nvidia_config(specs, extensions, mig=False, allow_runtime=True):
    return assignment.nvidia_config(specs, extensions, mig=mig,
                                    allow_runtime=allow_runtime)


class ContestedTest(testtools.TestCase):
    """After its create: does anyone else hold what the instance got?"""

    def contested(self, cards, instances, config=options.DEFAULT):
        return [(c.unit, list(c.others), c.yields)
                for c in assignment.contested(
                    cards, config, assignment.ledger(instances, MEMBER), ME)]

    def test_a_whole_card_held_by_another_too(self):
        mine = _container('me', {'nova-gpu-0': _pci(data.pci_of(0))}, ME,
                          created_at='2026-11-30T20:00:01.5Z')
        self.assertEqual([], self.contested(_h200(2), [mine]))
        other = _container('other', {'nova-gpu-0': _pci(data.pci_of(0))},
                           OTHER, project='team-b',
                           created_at='2026-11-30T20:00:01.25Z')
        # The other came first: this one gives the card up.
        self.assertEqual([(data.pci_of(0), ['team-b/other'], True)],
                         self.contested(_h200(2), [mine, other]))
        # Another card held by another is none of its business.
        elsewhere = _container('x', {'g': _pci(data.pci_of(1))})
        self.assertEqual([(data.pci_of(0), ['team-b/other'], True)],
                         self.contested(_h200(2), [mine, other, elsewhere]))

    def test_the_first_created_keeps_then_the_name_decides(self):
        def pair(mine_at, other_at, other_name='other'):
            return self.contested(_h200(1), [
                _container('me', {'nova-gpu-0': _pci(data.pci_of(0))}, ME,
                           created_at=mine_at),
                _container(other_name, {'g': _pci(data.pci_of(0))},
                           OTHER, created_at=other_at)])[0][2]
        # Nanoseconds as LXD writes them, its trailing zeros cut.
        self.assertFalse(pair('2026-11-30T20:00:01.12Z',
                              '2026-11-30T20:00:01.123456789Z'))
        self.assertTrue(pair('2026-11-30T20:00:02Z',
                             '2026-11-30T20:00:01.999Z'))
        same = '2026-11-30T20:00:01Z'
        self.assertFalse(pair(same, same, 'zz'))
        self.assertTrue(pair(same, same, 'aa'))
        # An unreadable time comes last.
        self.assertTrue(pair('yesterday', same))

    def test_a_shared_card_beyond_its_slots(self):
        config = options.parse(modes=['10de:1e04=shared:2'])
        rtx = _pci('0000:03:00.0')
        held = [_container('me', {'nova-gpu-0': rtx}, ME,
                           created_at='2026-11-30T20:00:02Z'),
                _container('b', {'nova-gpu-0': rtx}, OTHER,
                           created_at='2026-11-30T20:00:01Z')]
        self.assertEqual([], self.contested(_rtx(), held, config))
        held.append(_container('c', {'nova-gpu-0': rtx}, 'cccc',
                               created_at='2026-11-30T20:00:03Z'))
        # Second of three on two slots: c gives up, this one waits.
        self.assertEqual([('0000:03:00.0', ['b', 'c'], False)],
                         self.contested(_rtx(), held, config))
        held[2]['created_at'] = '2026-11-30T20:00:00Z'
        self.assertEqual([('0000:03:00.0', ['b', 'c'], True)],
                         self.contested(_rtx(), held, config))

    def test_a_mig_slice_held_twice_or_its_card_whole(self):
        cards, slices = _a100_mig()
        mig = {'type': 'gpu', 'gputype': 'mig', 'pci': data.pci_of(0),
               'mig.uuid': slices[0][1]}
        config = options.parse(modes=['10de:20b2=mig'])
        mine = _container('me', {'nova-gpu-0': mig}, ME)
        self.assertEqual([], self.contested(cards, [mine], config))
        for other in (_container('b', {'nova-gpu-0': mig}, OTHER),
                      _container('b', {'g': _pci(data.pci_of(0))})):
            self.assertEqual([(slices[0][1].lower(), ['b'], True)],
                             self.contested(cards, [mine, other], config))

    def test_taken_names_the_units_and_tells_the_tenant_nothing_of_them(self):
        e = assignment.GPUsTaken(MEMBER, [assignment.Contest(
            data.pci_of(0), ('team-b/x',), True)])
        self.assertIn('also taken by team-b/x', str(e))
        self.assertNotIn('team-b', e.tenant_message)
        self.assertIsInstance(e, assignment.GPUAssignmentError)


class NvidiaConfigTest(testtools.TestCase):
    FULL = LXDSpecs(nvidia_runtime=True,
                    nvidia_driver_capabilities='compute,utility,video',
                    nvidia_require_cuda='cuda>=12.0')

    def test_lxd_5_0_runtime_keys(self):
        self.assertEqual({'nvidia.runtime': 'true',
                          'nvidia.driver.capabilities':
                              'compute,utility,video',
                          'nvidia.require.cuda': 'cuda>=12.0'},
                         nvidia_config(self.FULL, LXD_5_0))

    def test_nothing_asked(self):
        self.assertEqual({}, nvidia_config(LXDSpecs(), LXD_5_0))

    def test_cdi_injects_the_libraries(self):
        self.assertEqual({}, nvidia_config(self.FULL, LXD_CDI))
        self.assertEqual({}, nvidia_config(self.FULL, LXD_6_10, mig=True))

    def test_mig_needs_runtime_before_mig_cdi(self):
        self.assertEqual({'nvidia.runtime': 'true'},
                         nvidia_config(LXDSpecs(), LXD_5_0, mig=True))
        self.assertEqual({'nvidia.runtime': 'true'},
                         nvidia_config(LXDSpecs(), LXD_CDI, mig=True))

    def test_refused_not_dropped(self):
        e = self.assertRaises(assignment.UnsupportedByLXD,
                              nvidia_config, self.FULL,
                              ['gpu_devices', 'nvidia_runtime'])
        self.assertIn('nvidia_runtime_config', str(e))
        self.assertRaises(assignment.UnsupportedByLXD,
                          nvidia_config,
                          LXDSpecs(nvidia_runtime=True), ['gpu_devices'])

    def test_the_runtime_needs_the_operator_mig_forces_nothing(self):
        e = self.assertRaises(assignment.GPUAssignmentError, nvidia_config,
                              LXDSpecs(), LXD_5_0, mig=True,
                              allow_runtime=False)
        self.assertIn('a MIG slice on LXD without gpu_mig_cdi needs '
                      'NVIDIA\'s hook (nvidia.runtime)', str(e))
        self.assertIn('[lxd] allow_nvidia_runtime = False', str(e))
        for extensions in (LXD_5_0, LXD_CDI):
            e = self.assertRaises(assignment.GPUAssignmentError,
                                  nvidia_config, self.FULL, extensions,
                                  allow_runtime=False)
            self.assertIn('lxd:nvidia_runtime', str(e))
        # Nothing asked, nothing forced: no switch needed.
        self.assertEqual({}, nvidia_config(LXDSpecs(), LXD_5_0,
                                           allow_runtime=False))
        self.assertEqual({}, nvidia_config(LXDSpecs(), LXD_6_10, mig=True,
                                           allow_runtime=False))

    def test_profile_names(self):
        config = nvidia_config(self.FULL, LXD_5_0)
        name = assignment.profile_name(config)
        self.assertRegex(name, r'^nova-gpu-[0-9a-f]{12}$')
        self.assertTrue(constants.is_gpu_profile(name))
        self.assertFalse(constants.is_gpu_profile('nova-gpu-0'))
        self.assertEqual(name, assignment.profile_name(
            dict(reversed(list(config.items())))))
        self.assertNotEqual(name, assignment.profile_name(
            {'nvidia.runtime': 'true'}))
        self.assertIsNone(assignment.profile_name({}))
        body = assignment.profile_body(config)
        self.assertEqual((name, config, {}),
                         (body['name'], body['config'], body['devices']))

    def test_cuda_requirement_for_cdi(self):
        cards = _rtx()          # LXD reports CUDA 11.6
        self.assertIsNone(assignment.cuda_problem('cuda>=11.0', cards))
        self.assertIsNone(assignment.cuda_problem(None, cards))
        self.assertIn('supports CUDA 11.6',
                      assignment.cuda_problem('cuda>=12.0', cards))
        self.assertIsNone(assignment.cuda_problem('cuda<12', cards))
        self.assertIn('no CUDA version', assignment.cuda_problem(
            'cuda>=12.0', discovery.cards(data.load(data.AMD))))


def _probe_module():
    path = os.path.join(os.path.dirname(data.GPU_DIR), '..', '..', '..',
                        'tools', 'gpu_probe.py')
    loader = importlib.machinery.SourceFileLoader('gpu_probe', path)
    module = importlib.util.module_from_spec(
        importlib.util.spec_from_loader('gpu_probe', loader))
    loader.exec_module(module)
    return module


def _fake_h200_nvml():
    """A fake pynvml: 2 x H200, card 0 in MIG mode with 2 slices."""
    lib = fakes.fake_nvml([
        {'pci': '00000000:18:00.0', 'uuid': 'GPU-00000000-aaaa',
         'name': 'NVIDIA H200', 'memory_mib': 143771, 'cc': (9, 0),
         'mig': 1, 'migs': [('MIG-0000-1', 'NVIDIA H200 MIG 1g.18gb'),
                            ('MIG-0000-2', 'NVIDIA H200 MIG 1g.18gb')]},
        {'pci': '00000000:28:00.0', 'uuid': 'GPU-00000001-aaaa',
         'name': 'NVIDIA H200', 'memory_mib': 143771, 'cc': (9, 0),
         'mig': 0}])
    info = lib.nvmlDeviceGetPciInfo
    lib.nvmlDeviceGetPciInfo = lambda h: types.SimpleNamespace(
        busId=info(h).busId, pciDeviceId=0x233510de)
    lib.nvmlSystemGetDriverVersion = lambda: b'550.127.05'
    lib.nvmlSystemGetCudaDriverVersion = lambda: 12040
    return lib


class ProbeTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.probe = _probe_module()

    def _run(self, *argv, lib=None):
        out, err = io.StringIO(), io.StringIO()
        with mock.patch('sys.stderr', err):
            rc = self.probe.main(['--no-lxd', '--member', 'h1'] +
                                 list(argv), out=out,
                                 lib=lib or _fake_h200_nvml())
        return rc, out.getvalue(), err.getvalue()

    def test_json_from_nvml_only(self):
        rc, out, _ = self._run('--json', '--gpu-modes', '0000:18:00.0=mig',
                               '--assign', 'PGPU=1',
                               '--assign', 'CUSTOM_MIG_1G_18GB=2')
        self.assertEqual(0, rc)
        view = json.loads(out)
        self.assertEqual('NVML', view['source'])
        self.assertIn('built from NVML', view['note'])
        self.assertTrue(view['nvml_order_is_pci_order'])
        self.assertEqual(['10de:2335', '10de:2335'],
                         [c['model'] for c in view['cards']])
        self.assertEqual(['0000:18:00.0', '0000:28:00.0'],
                         view['nvml_index_order'])
        (provider,) = view['providers']
        self.assertEqual('h1_gpu_10de_2335', provider['name'])
        self.assertEqual({'CUSTOM_MIG_1G_18GB': 2, 'PGPU': 1},
                         {rc: u['total']
                          for rc, u in provider['inventory'].items()})
        plain = view['assign']['lxd-5.0']['devices']
        self.assertEqual(
            [{'type': 'gpu', 'gputype': 'mig', 'pci': '0000:18:00.0',
              'mig.uuid': 'MIG-0000-1'},
             {'type': 'gpu', 'gputype': 'mig', 'pci': '0000:18:00.0',
              'mig.uuid': 'MIG-0000-2'},
             {'type': 'gpu', 'gputype': 'physical', 'pci': '0000:28:00.0'}],
            plain)
        cdi = view['assign']['cdi+nvidia_runtime']
        self.assertEqual('nvidia.com/gpu=GPU-00000001-aaaa',
                         cdi['devices'][-1]['id'])
        # MIG needs nvidia.runtime until LXD has MIG through CDI.
        self.assertEqual({'nvidia.runtime': 'true'}, cdi['config'])
        self.assertEqual(assignment.profile_name(cdi['config']),
                         cdi['profile'])

    def test_text(self):
        rc, out, _ = self._run()
        self.assertEqual(0, rc)
        self.assertIn('cards from NVML', out)
        self.assertIn('h1_gpu_10de_2335', out)
        self.assertIn('PGPU total 2', out)
        self.assertIn('MIG 1g.18gb MIG-0000-1', out)

    def test_nvml_library_missing(self):
        lib = fakes.fake_nvml([], init_error=fakes.LIBRARY_NOT_FOUND)
        rc, out, err = self._run(lib=lib)
        self.assertEqual(3, rc)
        self.assertIn('NVML did not start', err)

    def test_pynvml_not_installed(self):
        with mock.patch.dict('sys.modules', {'pynvml': None}):
            e = self.assertRaises(self.probe.ProbeError,
                                  self.probe.load_nvml)
        self.assertEqual(2, e.code)
        self.assertIn('pip install nvidia-ml-py', str(e))

    def test_resources_file(self):
        path = os.path.join(data.GPU_DIR, data.ASPEED_RTX)
        rc, out, _ = self._run('--json', '--resources', path,
                               lib=fakes.fake_nvml([]))
        self.assertEqual(0, rc)
        view = json.loads(out)
        self.assertEqual('file ' + path, view['source'])
        self.assertEqual(2, len(view['providers']))
