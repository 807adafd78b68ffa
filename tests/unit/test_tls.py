"""The pinned-certificate HTTPS session, against a real local TLS server."""

import http.server
import ssl
import threading

from cryptography.hazmat.primitives import hashes
from cryptography import x509
import fixtures
import requests
import testtools

from nova_lxd.lxd import tls
from tests.certs import write_self_signed


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"type": "sync", "metadata": {}}'
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class PinnedSessionTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        folder = self.useFixture(fixtures.TempDir()).path
        self.server_cert, server_key = write_self_signed(folder, 'server')
        self.other_cert, _ = write_self_signed(folder, 'other')
        self.client_cert, self.client_key = write_self_signed(folder,
                                                              'client')
        httpd = http.server.HTTPServer(('127.0.0.1', 0), _Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.server_cert, server_key)
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        self.addCleanup(httpd.server_close)
        self.addCleanup(httpd.shutdown)
        self.url = 'https://127.0.0.1:%d/1.0' % httpd.server_port
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
