"""HTTPS to LXD that trusts exactly one pinned certificate.

Why not pylxd's own ``verify=<server cert>``: requests lets
``REQUESTS_CA_BUNDLE`` (set on many hosts) replace a session's ``verify``,
and pylxd then pins the first certificate of that bundle instead of the
operator's ``server_cert`` ("Fingerprints did not match"). Here the pin is
fixed when the adapter is built and nothing per request can change it.

The pool class also names its own connection class, so that a process
which swaps urllib3's global HTTPS connection class (wsgi-intercept in
Nova's functional tests) still speaks real TLS to LXD.
"""

import hashlib
import hmac
import socket
import ssl

import requests
from requests import adapters
from urllib3 import connection
from urllib3 import connectionpool


def certificate_fingerprint(pem_path):
    """SHA-256 of the DER form of the PEM certificate at ``pem_path``."""
    with open(pem_path) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    return hashlib.sha256(der).hexdigest()


class _LXDHTTPSConnectionPool(connectionpool.HTTPSConnectionPool):
    ConnectionCls = connection.HTTPSConnection


class PinnedCertAdapter(adapters.HTTPAdapter):
    """Verify the server by the SHA-256 fingerprint of ``server_cert``.

    With ``fingerprint=None`` nothing is verified (``[lxd] insecure``).
    """

    def __init__(self, fingerprint):
        self.fingerprint = fingerprint
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        if self.fingerprint:
            kwargs['assert_fingerprint'] = self.fingerprint
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(
            self.poolmanager.pool_classes_by_scheme,
            https=_LXDHTTPSConnectionPool)

    def send(self, request, **kwargs):
        # CA verification is replaced by the fingerprint pin; whatever
        # verify= a caller or the environment passes is ignored.
        kwargs['verify'] = False
        return super().send(request, **kwargs)


def https_session(client_cert, client_key, server_cert, insecure=False):
    """A requests session for one LXD HTTPS endpoint."""
    session = requests.Session()
    # No proxy and no CA bundle from the environment: LXD is reached
    # directly and trusted only through server_cert.
    session.trust_env = False
    session.verify = False
    session.cert = (client_cert, client_key)
    fingerprint = None if insecure else certificate_fingerprint(server_cert)
    session.mount('https://', PinnedCertAdapter(fingerprint))
    return session


def pinned_socket(host, port, client_cert, client_key, server_cert,
                  insecure=False, timeout=None):
    """A TLS socket to one LXD endpoint, pinned like ``https_session``.

    For what requests cannot carry: LXD's websockets. Another
    certificate than ``server_cert`` (unless ``insecure``): ConnectionError.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # The pin below replaces CA and host name checks.
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.load_cert_chain(client_cert, client_key)
    sock = socket.create_connection((host, port), timeout)
    try:
        sock = context.wrap_socket(sock)
        if not insecure:
            found = hashlib.sha256(sock.getpeercert(binary_form=True))
            if not hmac.compare_digest(found.hexdigest(),
                                       certificate_fingerprint(server_cert)):
                raise ConnectionError('%s:%s presented a certificate '
                                      'other than %s'
                                      % (host, port, server_cert))
        return sock
    except Exception:
        sock.close()
        raise
