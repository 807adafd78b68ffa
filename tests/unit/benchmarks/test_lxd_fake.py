"""benchmarks/lxd_fake.py: recorded LXD answers replicated for N members."""

import json
import os
import subprocess
import sys
from unittest import mock

import fixtures
import requests
import testtools

from benchmarks import lxd_fake

PROJECT = 'project=p'


def response(url, body, status=200):
    found = mock.Mock(url=url, status_code=status)
    found.json.return_value = body
    return found


def sync(metadata):
    return {'type': 'sync', 'status': 'Success', 'status_code': 200,
            'metadata': metadata}


def recorded():
    """A recording of a two-member cluster, as member_scale makes it."""
    recorder = lxd_fake.Recorder()
    base = 'https://127.0.21.2:8443'
    recorder.record('GET', base + '/1.0/cluster/members?project=p&'
                    'recursion=1', response(None, sync([
                        {'server_name': 'lxd1', 'status': 'Online',
                         'url': base},
                        {'server_name': 'lxd2', 'status': 'Online',
                         'url': 'https://127.0.21.3:8443'}])))
    for member, cpus in (('lxd1', 4), ('lxd2', 8)):
        recorder.record('GET', base + '/1.0/resources?%s&target=%s' % (
            PROJECT, member), response(None, sync({'cpu': {'total': cpus}})))
    recorder.record('GET', base + '/1.0/instances?project=p&recursion=1',
                    response(None, sync([{
                        'name': 'instance-00000001', 'location': 'lxd1',
                        'status_code': 102,
                        'config': {lxd_fake.INSTANCE_UUID_KEY: 'u1',
                                   'limits.cpu': '1'},
                        'expanded_config': {
                            lxd_fake.INSTANCE_UUID_KEY: 'u1'}}])))
    # Not recorded: other methods, plain HTTP, answers without JSON.
    recorder.record('POST', base + '/1.0/instances', response(None, {}))
    recorder.record('GET', 'http://x/1.0', response(None, {}))
    bad = response(None, None)
    bad.json.side_effect = ValueError
    recorder.record('GET', base + '/1.0/events', bad)
    return recorder


class RecorderTest(testtools.TestCase):

    def test_gets_by_target_and_members(self):
        recorder = recorded()
        self.assertEqual(['lxd1', 'lxd2'], recorder.members)
        self.assertEqual({
            'GET /1.0/cluster/members?project=p&recursion=1',
            'GET /1.0/resources?project=p',
            'GET /1.0/instances?project=p&recursion=1'},
            set(recorder.answers))
        self.assertEqual({'lxd1', 'lxd2'}, set(
            recorder.answers['GET /1.0/resources?project=p']))


class FakeTest(testtools.TestCase):

    def fake(self, count=5, per_member=1):
        instances = [('c-%s-%d' % (m, i), 'uuid-%s-%d' % (m, i), m)
                     for m in lxd_fake.member_names(count)
                     for i in range(per_member)]
        return lxd_fake.Fake(recorded().spec(instances), count)

    def test_members_replicated(self):
        status, body = self.fake().answer(
            'GET', '/1.0/cluster/members?recursion=1&project=p')
        self.assertEqual(200, status)
        self.assertEqual(
            [('lxd%d' % i, 'https://127.0.21.%d:8443' % (i + 1), 'Online')
             for i in range(1, 6)],
            [(m['server_name'], m['url'], m['status'])
             for m in body['metadata']])

    def test_targets_answered_by_the_recorded_members_in_turn(self):
        fake = self.fake()
        cpus = [fake.answer('GET', '/1.0/resources?project=p&target=lxd%d'
                            % i)[1]['metadata']['cpu']['total']
                for i in range(1, 6)]
        self.assertEqual([4, 8, 4, 8, 4], cpus)

    def test_unknown_member(self):
        fake = self.fake()
        status, body = fake.answer('GET',
                                   '/1.0/resources?project=p&target=lxd6')
        self.assertEqual(404, status)
        self.assertEqual(404, body['error_code'])

    def test_listing_has_the_spec_containers(self):
        listing = self.fake(count=3, per_member=2).answer(
            'GET', '/1.0/instances?project=p&recursion=1')[1]['metadata']
        self.assertEqual(6, len(listing))
        last = listing[-1]
        self.assertEqual(('c-lxd3-1', 'lxd3', 102),
                         (last['name'], last['location'],
                          last['status_code']))
        self.assertEqual('uuid-lxd3-1',
                         last['config'][lxd_fake.INSTANCE_UUID_KEY])
        self.assertEqual('uuid-lxd3-1',
                         last['expanded_config'][lxd_fake.INSTANCE_UUID_KEY])
        self.assertEqual('1', last['config']['limits.cpu'])

    def test_the_recording_is_left_as_it_was(self):
        recorder = recorded()
        lxd_fake.Fake(recorder.spec([]), 9)
        self.assertEqual(2, len(recorder.answers[
            'GET /1.0/cluster/members?project=p&recursion=1'][
            '']['body']['metadata']))

    def test_what_was_not_recorded(self):
        fake = self.fake()
        self.assertEqual(404, fake.answer('GET', '/1.0/networks')[0])
        self.assertEqual(['GET /1.0/networks'], fake.unknown)

    def test_too_many_members(self):
        self.assertRaises(ValueError, lxd_fake.replicated_members,
                          [{'server_name': 'lxd1'}], lxd_fake.MAX_MEMBERS + 1)


class ServeTest(testtools.TestCase):
    """The fake as member_scale runs it: a process answering HTTPS."""

    def test_over_https(self):
        folder = self.useFixture(fixtures.TempDir()).path
        cert = os.path.join(folder, 'c.crt')
        key = os.path.join(folder, 'c.key')
        subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec',
                        '-pkeyopt', 'ec_paramgen_curve:prime256v1',
                        '-nodes', '-subj', '/CN=t', '-days', '1',
                        '-keyout', key, '-out', cert],
                       check=True, capture_output=True)
        spec = os.path.join(folder, 'spec.json')
        with open(spec, 'w') as f:
            json.dump(recorded().spec([]), f)
        fake = subprocess.Popen(
            [sys.executable, '-m', 'benchmarks.lxd_fake', spec, '3', cert,
             key, '127.0.0.1'], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True)
        self.addCleanup(fake.wait, 10)
        self.addCleanup(fake.stdin.close)
        port = fake.stdout.readline().split()[-1]
        got = requests.get(
            'https://127.0.0.1:%s/1.0/resources' % port,
            params={'project': 'p', 'target': 'lxd3'}, verify=False,
            timeout=10)
        self.assertEqual({'cpu': {'total': 4}}, got.json()['metadata'])
