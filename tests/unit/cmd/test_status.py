"""nova-lxd-status's verdicts and its OVSDB probe (no LXD)."""

import io
import json
import os
import socket
import threading
from unittest import mock

import fixtures
from nova import exception
from nova import test

from nova_lxd.cmd import status
from nova_lxd.lxd import errors

Code = status.Code


class FakeOVSDB(object):
    """An OVSDB server on a unix socket that knows some bridges."""

    def __init__(self, path, bridges, reply=None):
        self.path, self.bridges, self.reply = path, bridges, reply
        self.requests = []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(1)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        conn, _ = self.server.accept()
        with conn:
            request = json.loads(conn.recv(65536))
            self.requests.append(request)
            if self.reply == 'close':
                return
            # An echo first, as OVSDB servers send: not the answer.
            conn.sendall(b'{"id":"echo","method":"echo","params":[]}')
            where = request['params'][1]['where'][0][2]
            rows = [{'name': where}] if where in self.bridges else []
            answer = self.reply or {'id': request['id'], 'error': None,
                                    'result': [{'rows': rows}]}
            text = json.dumps(answer).encode()
            conn.sendall(text[:5])      # in pieces
            conn.sendall(text[5:])

    def close(self):
        self.thread.join(5)
        self.server.close()


class OvsdbTest(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                                 'db.sock')

    def _serve(self, bridges=('br-int',), reply=None):
        server = FakeOVSDB(self.path, bridges, reply)
        self.addCleanup(server.close)
        return server

    def test_bridge_found_or_not(self):
        server = self._serve()
        self.assertTrue(status.ovsdb_has_bridge('unix:' + self.path,
                                                'br-int'))
        self.assertEqual('transact', server.requests[0]['method'])
        self.assertEqual('Open_vSwitch', server.requests[0]['params'][0])

    def test_missing_bridge(self):
        self._serve(bridges=())
        self.assertFalse(status.ovsdb_has_bridge('unix:' + self.path,
                                                 'br-int'))

    def test_server_error_is_raised(self):
        self._serve(reply={'id': 0, 'error': 'unknown database',
                           'result': None})
        self.assertRaisesRegex(ValueError, 'unknown database',
                               status.ovsdb_has_bridge,
                               'unix:' + self.path, 'br-int')

    def test_closed_connection_and_no_server(self):
        self._serve(reply='close')
        self.assertRaisesRegex(OSError, 'closed the connection',
                               status.ovsdb_has_bridge,
                               'unix:' + self.path, 'br-int')
        self.assertRaises(OSError, status.ovsdb_has_bridge,
                          'unix:' + self.path + '.none', 'br-int')

    def test_only_tcp_and_unix(self):
        self.assertRaisesRegex(ValueError, 'only tcp: and unix:',
                               status.ovsdb_has_bridge,
                               'ssl:127.0.0.1:6640', 'br-int')


class VerdictTest(test.NoDBTestCase):

    def test_skew(self):
        self.assertEqual(Code.SUCCESS,
                         status.skew_result({'a': 1.0, 'b': -1.0}).code)
        warning = status.skew_result({'a': 0.0, 'b': 7.0})
        self.assertEqual(Code.WARNING, warning.code)
        self.assertIn('b +7 s', warning.details)
        # Two members 40 s apart each way: 80 s between them.
        self.assertEqual(Code.FAILURE,
                         status.skew_result({'a': -40.0, 'b': 40.0}).code)

    def test_pool(self):
        created = {'driver': 'btrfs', 'status': 'Created'}
        self.assertEqual(Code.SUCCESS, status.pool_result(
            'p', {'m1': created, 'm2': created}).code)
        dir_pool = status.pool_result(
            'p', {'m1': {'driver': 'dir', 'status': 'Created'}})
        self.assertEqual(Code.FAILURE, dir_pool.code)
        self.assertIn('[lxd] allow_dir_pool = True', dir_pool.details)
        dir_pool = status.pool_result(
            'p', {'m1': {'driver': 'dir', 'status': 'Created'}}, True)
        self.assertEqual(Code.WARNING, dir_pool.code)
        self.assertIn('does not enforce', dir_pool.details)
        missing = status.pool_result('p', {'m1': created, 'm2': None})
        self.assertEqual(Code.FAILURE, missing.code)
        self.assertIn('missing on m2', missing.details)
        pending = status.pool_result(
            'p', {'m1': {'driver': 'zfs', 'status': 'Pending'}})
        self.assertEqual(Code.FAILURE, pending.code)


class UnreachableLXDTest(test.NoDBTestCase):
    """When LXD cannot be used, every LXD check fails and says why."""

    def test_exit_code_and_json(self):
        conf = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'nova.conf')
        with open(conf, 'w') as f:
            f.write('[lxd]\nendpoint = /nonexistent/unix.socket\n')
        out = io.StringIO()
        with mock.patch('sys.stdout', out):
            code = status.main(['--config-file', conf, 'check', '--json'])
        self.assertEqual(2, code)
        results = {c['check']: c for c in json.loads(out.getvalue())[
            'checks']}
        reachable = results['LXD reachable']
        self.assertEqual(Code.FAILURE, reachable['result'])
        self.assertIn('/nonexistent/unix.socket does not exist',
                      reachable['details'])
        self.assertIn('[lxd] endpoint', reachable['details'])
        self.assertIn('see "LXD reachable"',
                      results['LXD project']['details'])
        # Not LXD's: no [neutron] section, no GPU modes.
        self.assertEqual(Code.SUCCESS,
                         results['Networking (os-vif, Open vSwitch)'][
                             'result'])
        self.assertEqual(Code.SUCCESS, results['GPU runtime']['result'])

    def test_bad_gpu_option_fails_its_check(self):
        conf = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'nova.conf')
        with open(conf, 'w') as f:
            f.write('[lxd]\nendpoint = /nonexistent\ngpu_modes = *=half\n')
        with mock.patch('sys.stdout', io.StringIO()) as out:
            status.main(['--config-file', conf, 'upgrade', 'check'])
        self.assertIn('gpu_modes', out.getvalue())
        self.assertIn('mode must be whole', out.getvalue())

    def test_error_is_255(self):
        with mock.patch.object(status.Checks, 'check',
                               side_effect=exception.NovaException('x')):
            with mock.patch('sys.stdout', io.StringIO()):
                self.assertEqual(255, status.main(
                    ['--config-file', os.devnull, 'check']))


class LXDFailsMidwayTest(test.NoDBTestCase):
    """LXD answered the first requests, then stopped answering."""

    def test_that_check_fails_naming_it(self):
        checks = status.Checks(status._config(
            ['--config-file', os.devnull, 'check']))
        checks._lxd = mock.Mock(info={'auth': 'trusted'})
        checks._lxd.members.side_effect = errors.LXDError(
            reason='cannot reach LXD: connection refused')
        result = dict(checks._upgrade_checks)['Members and Nova hosts'](
            checks)
        self.assertEqual(Code.FAILURE, result.code)
        self.assertIn('LXD failed during this check: LXD: cannot reach '
                      'LXD: connection refused', result.details)
        self.assertIn('lxc cluster list', result.details)
