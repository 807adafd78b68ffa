"""The pinned-certificate HTTPS session, against a real local TLS server."""

import subprocess
import sys

from cryptography.hazmat.primitives import hashes
from cryptography import x509
import fixtures
import requests
import testtools

from nova_lxd.lxd import tls
from tests.certs import write_self_signed


class PinnedSessionTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        folder = self.useFixture(fixtures.TempDir()).path
        self.server_cert, server_key = write_self_signed(folder, 'server')
        self.other_cert, _ = write_self_signed(folder, 'other')
        self.client_cert, self.client_key = write_self_signed(folder,
                                                              'client')
        server = subprocess.Popen(
            [sys.executable, '-m', 'tests.tls_server', self.server_cert,
             server_key], stdout=subprocess.PIPE, text=True)
        self.addCleanup(server.wait)
        self.addCleanup(server.kill)
        self.url = 'https://127.0.0.1:%d/1.0' % int(server.stdout.readline())
        # What these machines set: a CA bundle that does not hold the
        # server's certificate. It must change nothing.
        self.useFixture(fixtures.EnvironmentVariable(
            'REQUESTS_CA_BUNDLE', self.other_cert))

    def session(self, server_cert, insecure=False):
        return tls.https_session(self.client_cert, self.client_key,
                                 server_cert, insecure)

    def test_pinned_certificate_accepted_despite_environment_bundle(self):
        response = self.session(self.server_cert).get(self.url, timeout=10)
        self.assertEqual(200, response.status_code)

    def test_per_request_verify_cannot_replace_the_pin(self):
        session = self.session(self.other_cert)
        self.assertRaises(requests.exceptions.SSLError, session.get,
                          self.url, verify=self.server_cert, timeout=10)

    def test_other_certificate_refused(self):
        e = self.assertRaises(requests.exceptions.SSLError,
                              self.session(self.other_cert).get, self.url,
                              timeout=10)
        self.assertIn('Fingerprints did not match', str(e))

    def test_insecure_accepts_any_certificate(self):
        response = self.session(None, insecure=True).get(self.url,
                                                         timeout=10)
        self.assertEqual(200, response.status_code)

    def test_fingerprint_is_sha256_of_der(self):
        with open(self.server_cert, 'rb') as f:
            cert = x509.load_pem_x509_certificate(f.read())
        self.assertEqual(cert.fingerprint(hashes.SHA256()).hex(),
                         tls.certificate_fingerprint(self.server_cert))
