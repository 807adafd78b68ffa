"""The LXD door's own rules, with pylxd faked."""

import os
import threading
import time
from unittest import mock

import fixtures
from nova import exception
from nova import test
from pylxd import exceptions as pylxd_exc
import requests

from nova_lxd.lxd import client
from nova_lxd.lxd import errors
from tests import certs


class BusyTest(test.NoDBTestCase):
    """LXD's "Instance is busy" is tried again, for every action."""

    def setUp(self):
        super().setUp()
        self.lxd = object.__new__(client.LXD)
        self.lxd.conf = mock.Mock(timeout=10, delete_timeout=30)
        self.lxd._client = mock.MagicMock()
        self.lxd._start = mock.Mock(return_value={'type': 'sync'})
        self.sleep = self.useFixture(test.fixtures.MockPatch(
            'time.sleep')).mock

    def test_state_changes_and_deletes_wait_for_the_lock(self):
        busy = errors.LXDError(
            reason='Instance is busy running a "update" operation')
        for action in (lambda: self.lxd.change_state('c1', 'stop',
                                                     force=True),
                       lambda: self.lxd.delete_instance('c1'),
                       lambda: self.lxd.delete_snapshot('c1', 's1'),
                       lambda: self.lxd.update_instance('c1', {}),
                       lambda: self.lxd.move_instance('c1', 'lxd2', 60)):
            self.lxd._start.reset_mock()
            self.lxd._start.side_effect = [busy, busy, {'type': 'sync'}]
            action()
            self.assertEqual(3, self.lxd._start.call_count)
        self.sleep.assert_called_with(client.BUSY_RETRY_SECONDS)

    def test_busy_operations_too(self):
        # LXD may answer busy when the operation runs, not when asked.
        self.lxd._start.return_value = {
            'type': 'async', 'operation': '/1.0/operations/op1'}
        wait = self.lxd._client.api.operations['op1'].wait.get
        busy = mock.Mock(status_code=200)
        busy.json.return_value = {'metadata': {
            'status_code': 400, 'err': 'Instance is busy running a "start" '
                                       'operation'}}
        done = mock.Mock(status_code=200)
        done.json.return_value = {'metadata': {'status_code': 200}}
        wait.side_effect = [busy, done]
        self.lxd.change_state('c1', 'stop')
        self.assertEqual(2, self.lxd._start.call_count)

    def test_other_errors_and_lasting_busy_are_raised(self):
        self.lxd._start.side_effect = errors.LXDError(reason='no such thing')
        self.assertRaises(errors.LXDError, self.lxd.change_state, 'c1',
                          'start')
        self.assertEqual(1, self.lxd._start.call_count)
        self.lxd._start.reset_mock()
        self.lxd._start.side_effect = errors.LXDError(
            reason='Instance is busy running a "start" operation')
        self.assertRaises(errors.LXDError, self.lxd.change_state, 'c1',
                          'stop')
        self.assertEqual(client.BUSY_RETRIES + 1, self.lxd._start.call_count)


class DeleteOwnedTest(test.NoDBTestCase):
    """The ownership check before a container is deleted."""

    def setUp(self):
        super().setUp()
        self.lxd = object.__new__(client.LXD)
        self.lxd.instance = mock.Mock()
        self.lxd.change_state = mock.Mock()
        self.lxd.delete_instance = mock.Mock(return_value=True)

    def found(self, status, **config):
        self.lxd.instance.return_value = {'status': status,
                                          'config': config}

    def test_stops_and_deletes_the_owners_container(self):
        self.found('Running', **{'user.nova.instance_uuid': 'u1'})
        self.assertTrue(self.lxd.delete_owned(
            'c1', 'user.nova.instance_uuid', 'u1'))
        self.lxd.change_state.assert_called_once_with('c1', 'stop',
                                                      force=True)
        self.lxd.delete_instance.assert_called_once_with('c1')

    def test_a_stopped_one_is_only_deleted(self):
        self.found('Stopped', **{'user.nova.instance_uuid': 'u1'})
        self.assertTrue(self.lxd.delete_owned(
            'c1', 'user.nova.instance_uuid', 'u1'))
        self.lxd.change_state.assert_not_called()

    def test_someone_elses_container_of_that_name_stays(self):
        for config in ({'user.nova.instance_uuid': 'u2'}, {}):
            self.found('Running', **config)
            self.assertFalse(self.lxd.delete_owned(
                'c1', 'user.nova.instance_uuid', 'u1'))
        self.lxd.change_state.assert_not_called()
        self.lxd.delete_instance.assert_not_called()

    def test_gone_already(self):
        self.lxd.instance.side_effect = errors.LXDNotFound(reason='gone')
        self.assertFalse(self.lxd.delete_owned(
            'c1', 'user.nova.instance_uuid', 'u1'))
        self.lxd.delete_instance.assert_not_called()


class RequestTest(test.NoDBTestCase):
    """LXD's answers through pylxd's api nodes, as the driver sees them."""

    def setUp(self):
        super().setUp()
        self.lxd = object.__new__(client.LXD)
        self.lxd.conf = mock.Mock(timeout=10, create_timeout=300,
                                  snapshot_timeout=900)
        self.lxd.info = {'environment': {'server_clustered': False}}
        self.lxd.endpoint = 'https://lxd.example:8443'
        self.lxd._client = mock.MagicMock()
        self.api = self.lxd._client.api

    @staticmethod
    def response(status, body):
        response = mock.Mock(status_code=status)
        response.json.return_value = body
        return response

    def test_lxd_errors_become_nova_exceptions_with_lxd_words(self):
        for exc, status, expected in (
                (pylxd_exc.NotFound, 404, errors.LXDNotFound),
                (pylxd_exc.Conflict, 409, errors.LXDConflict),
                (pylxd_exc.LXDAPIException, 500, errors.LXDError)):
            self.api.instances['c1'].get.side_effect = exc(self.response(
                status, {'error': 'LXD says %d' % status}))
            e = self.assertRaises(expected, self.lxd.instance, 'c1')
            self.assertEqual('LXD: LXD says %d' % status, str(e))
            self.assertIs(type(e), expected)

    def test_unreachable(self):
        self.api.instances.get.side_effect = (
            requests.ConnectionError('refused'))
        e = self.assertRaises(errors.LXDError, self.lxd.instances)
        self.assertIn('cannot reach https://lxd.example:8443: refused',
                      str(e))

    def test_a_failed_operation_is_an_error(self):
        self.api.images.post.return_value = self.response(202, {
            'type': 'async', 'operation': '/1.0/operations/op1?project=p'})
        self.api.operations['op1'].wait.get.return_value = self.response(
            200, {'metadata': {'status_code': 400, 'status': 'Failure',
                               'err': 'bad image'}})
        e = self.assertRaises(errors.LXDError, self.lxd.publish_snapshot,
                              'c1', 's1', {}, {'name': 'a'})
        self.assertEqual('LXD: bad image', str(e))
        self.api.operations['op1'].wait.get.assert_called_once_with(
            params={'timeout': 900}, timeout=910)

    def async_answer(self, *states):
        self.api.instances.post.return_value = self.response(202, {
            'type': 'async', 'operation': '/1.0/operations/op1?project=p'})
        self.api.operations['op1'].wait.get.side_effect = [
            self.response(200, {'metadata': state}) for state in states]

    def test_each_kind_of_operation_has_its_timeout(self):
        self.async_answer({'status_code': 200, 'metadata': None})
        self.lxd.create_instance({'name': 'c1'}, 'm1')
        self.api.operations['op1'].wait.get.assert_called_once_with(
            params={'timeout': 300}, timeout=310)

    RUNNING = {'status_code': 103, 'status': 'Running',
               'description': 'Creating instance'}

    def test_past_its_timeout_an_operation_lxd_cannot_cancel_goes_on(self):
        self.async_answer(dict(self.RUNNING, may_cancel=False))
        e = self.assertRaises(errors.LXDTimeout, self.lxd.create_instance,
                              {'name': 'c1'}, 'm1')
        self.assertEqual('LXD: Creating instance (operation op1) did not '
                         'finish within 300s; LXD goes on with it', str(e))
        self.api.operations['op1'].delete.assert_not_called()

    def test_past_its_timeout_an_operation_is_cancelled_where_it_can(self):
        self.async_answer(dict(self.RUNNING, may_cancel=True),
                          {'status_code': 401, 'status': 'Cancelled'})
        e = self.assertRaises(errors.LXDTimeout, self.lxd.create_instance,
                              {'name': 'c1'}, 'm1')
        self.assertIn('did not finish within 300s; cancelled', str(e))
        self.api.operations['op1'].delete.assert_called_once_with()

    def test_an_operation_that_ends_while_cancelled_is_what_it_is(self):
        self.async_answer(dict(self.RUNNING, may_cancel=True),
                          {'status_code': 200, 'metadata': {'x': 1}})
        self.lxd.create_instance({'name': 'c1'}, 'm1')

    def test_an_alias_that_exists_is_no_error(self):
        self.api.images.aliases.post.side_effect = pylxd_exc.Conflict(
            self.response(409, {'error': 'Alias already exists'}))
        self.assertFalse(self.lxd.add_image_alias('nova-glance-1', 'f00d',
                                                  'Glance image 1'))
        self.api.images.aliases.post.side_effect = None
        self.api.images.aliases.post.return_value = self.response(
            201, {'type': 'sync', 'metadata': {}})
        self.assertTrue(self.lxd.add_image_alias('nova-glance-1', 'f00d',
                                                 'Glance image 1'))
        self.api.images.aliases.post.assert_called_with(json={
            'name': 'nova-glance-1', 'target': 'f00d',
            'description': 'Glance image 1'})

    def test_image_alias(self):
        alias = {'name': 'a', 'target': 'f00d', 'description': 'd'}
        self.api.images.aliases['a'].get.return_value = self.response(
            200, {'type': 'sync', 'metadata': alias})
        self.assertEqual(alias, self.lxd.image_alias('a'))
        self.api.images.aliases['b'].get.side_effect = pylxd_exc.NotFound(
            self.response(404, {'error': 'not found'}))
        self.assertIsNone(self.lxd.image_alias('b'))


class CreateTest(test.NoDBTestCase):
    """Containers with their own id range get it one at a time per member.

    LXD 5.0 gives containers given an isolated range at the same moment
    the same host ids; the creates themselves may go at once.
    """

    def setUp(self):
        super().setUp()
        self.lxd = object.__new__(client.LXD)
        self.lxd.conf = mock.Mock(create_timeout=300)
        self.lxd.info = {'environment': {'server_clustered': True}}
        self.lxd._client = mock.MagicMock()
        self.members, self.posted, self.patched = {}, [], []
        self.running = {'post': {}, 'patch': {}}
        self.overlapped = {'post': [], 'patch': []}

        def run(method, node, json=None, params=None, wait=None):
            # LXD's operation, until it ends: which others overlap it.
            if method == 'post':
                name = json['name']
                self.members[name] = params['target']
                self.posted.append(json)
            else:
                name = node._name
                self.patched.append((name, json))
            running = self.running[method]
            self.overlapped[method].extend(
                (self.members[name], self.members[other])
                for other in running)
            running[name] = True
            time.sleep(0.05)
            del running[name]
        self.lxd._run = run
        self.lxd._client.api.instances.__getitem__.side_effect = (
            lambda name: mock.Mock(_name=name))

    def create_at_once(self, *creates):
        threads = [threading.Thread(target=self.lxd.create_instance,
                                    args=(body, member))
                   for body, member in creates]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    @staticmethod
    def body(name, isolated, **config):
        if isolated:
            config['security.idmap.isolated'] = 'true'
        return {'name': name, 'config': config}

    def test_isolated_ones_created_at_once_given_ranges_one_at_a_time(self):
        self.create_at_once(*((self.body('c%d' % i, True), 'm1')
                              for i in range(3)))
        self.assertEqual(3, len(self.overlapped['post']))
        self.assertEqual([], self.overlapped['patch'])
        self.assertEqual([{}] * 3, [b['config'] for b in self.posted])
        self.assertEqual(
            [('c0', 'c1', 'c2'), ({'config': {
                'security.idmap.isolated': 'true'}},) * 3],
            [tuple(x) for x in zip(*sorted(self.patched))])

    def test_with_gpus_created_with_the_range_one_at_a_time(self):
        # A config change makes LXD set LXC up, which needs NVIDIA's tools.
        runtime = self.body('c1', True, **{'nvidia.runtime': 'true'})
        mig = dict(self.body('c2', True), devices={
            'nova-gpu-0': {'type': 'gpu', 'gputype': 'mig'}})
        self.create_at_once((runtime, 'm1'), (mig, 'm1'))
        self.assertEqual([], self.overlapped['post'])
        self.assertEqual([], self.patched)
        self.assertEqual(['true'] * 2, [
            b['config']['security.idmap.isolated'] for b in self.posted])

    def test_other_members_given_ranges_at_once(self):
        self.create_at_once((self.body('c1', True), 'm1'),
                            (self.body('c2', True), 'm2'))
        self.assertEqual(1, len(self.overlapped['patch']))

    def test_an_explicit_base_or_no_isolation_is_created_as_it_is(self):
        based = self.body('c1', True, **{'security.idmap.base': '165536',
                                         'security.idmap.size': '65536'})
        shared = self.body('c2', False)
        self.create_at_once((based, 'm1'), (shared, 'm1'))
        self.assertEqual([], self.patched)
        self.assertEqual(sorted([based, shared], key=lambda b: b['name']),
                         sorted(self.posted, key=lambda b: b['name']))


class ConsoleLogTest(RequestTest):
    """GET /1.0/instances/<name>/console: raw bytes, bounded, which kind."""

    def answer(self, chunks, disposition):
        response = mock.MagicMock(headers={
            'Content-Disposition': disposition})
        response.__enter__.return_value = response
        response.iter_content.return_value = iter(chunks)
        self.api.instances['c1'].console.get.return_value = response

    def test_a_running_containers_buffer(self):
        self.answer([b'caf\xc3\xa9 ', b'\xff\x00\r\n'], 'inline;filename=')
        self.assertEqual((b'caf\xc3\xa9 \xff\x00\r\n', False),
                         self.lxd.console_log('c1', 100))
        self.api.instances['c1'].console.get.assert_called_once_with(
            is_api=False, stream=True)

    def test_a_stopped_containers_file(self):
        self.answer([b'halting\n'],
                    'inline;filename=/var/lib/lxd/logs/c1/console.log')
        self.assertEqual((b'halting\n', True),
                         self.lxd.console_log('c1', 100))

    def test_only_the_last_bytes_are_kept_while_reading(self):
        self.answer([b'0123456789'] * 3 + [b'abc'], 'inline;filename=')
        self.assertEqual((b'789abc', False), self.lxd.console_log('c1', 6))

    def test_nothing_new_from_a_running_container(self):
        # LXD 5.0 answers 500 "open : no such file or directory".
        self.api.instances['c1'].console.get.side_effect = (
            pylxd_exc.LXDAPIException(self.response(500, {
                'error': 'open : no such file or directory'})))
        self.assertEqual((b'', False), self.lxd.console_log('c1', 6))
        self.api.instances['c1'].console.get.side_effect = (
            pylxd_exc.NotFound(self.response(404, {'error': 'not found'})))
        self.assertRaises(errors.LXDNotFound, self.lxd.console_log, 'c1', 6)

    def test_a_broken_read_is_an_lxd_error(self):
        self.answer([], 'inline;filename=')
        self.api.instances['c1'].console.get.return_value \
            .iter_content.side_effect = requests.ConnectionError('reset')
        e = self.assertRaises(errors.LXDError, self.lxd.console_log, 'c1', 6)
        self.assertIn('console log of c1: reset', str(e))


class SeesAllProjectsTest(test.NoDBTestCase):
    """Whether the GPU ledger can trust an all-projects listing."""

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.MockPatch(
            'nova_lxd.lxd.tls.certificate_fingerprint',
            return_value='f1ng'))

    def lxd(self, endpoint, extensions=('instance_all_projects',),
            mine=None):
        lxd = object.__new__(client.LXD)
        lxd.endpoint = endpoint
        lxd.info = {'api_extensions': list(extensions)}
        lxd.conf = mock.Mock(client_cert='/etc/nova/lxd/client.crt')
        lxd._client = mock.MagicMock()
        lxd._get = mock.Mock(side_effect=mine)
        return lxd

    def test_the_local_socket_is_root(self):
        self.assertTrue(self.lxd('/var/lib/lxd/unix.socket')
                        .sees_all_projects())
        self.assertFalse(self.lxd('/var/lib/lxd/unix.socket', ())
                         .sees_all_projects())

    def test_a_restricted_certificate_sees_its_projects_only(self):
        https = 'https://lxd:8443'
        self.assertTrue(self.lxd(https, mine=[{'restricted': False}])
                        .sees_all_projects())
        self.assertFalse(self.lxd(https, mine=[{'restricted': True}])
                         .sees_all_projects())
        self.assertFalse(self.lxd(https, mine=errors.LXDError(
            reason='not authorized')).sees_all_projects())


class HTTPSOptionsTest(test.NoDBTestCase):
    """The client key's mode and [lxd] insecure, before any request."""

    def setUp(self):
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.cert, self.key = certs.write_self_signed(self.tmp, 'nova')
        self.conf = mock.Mock(endpoint='https://lxd:8443',
                              client_cert=self.cert, client_key=self.key,
                              server_cert=self.cert, insecure=False)

    def test_key_only_its_owner_and_group_read(self):
        for mode in (0o600, 0o400, 0o640):
            os.chmod(self.key, mode)
            client._https_session(self.conf)

    def test_key_others_can_read_is_refused(self):
        for mode in (0o644, 0o604, 0o666):
            os.chmod(self.key, mode)
            e = self.assertRaises(exception.InvalidConfiguration,
                                  client._https_session, self.conf)
            self.assertIn('[lxd] client_key %s' % self.key, str(e))
            self.assertIn('mode %04o' % mode, str(e))
            self.assertIn('chmod 600 %s' % self.key, str(e))

    def test_insecure_is_said_in_the_log(self):
        log = self.useFixture(fixtures.FakeLogger())
        client._https_session(self.conf)
        self.assertNotIn('insecure', log.output)
        self.conf.insecure = True
        client._https_session(self.conf)
        self.assertIn('[lxd] insecure = True: the certificate of LXD at '
                      'https://lxd:8443 is not verified', log.output)
