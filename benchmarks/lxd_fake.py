"""A fake LXD cluster of N members, from responses recorded on a real one.

For ``benchmarks.member_scale``: the driver's periodic work against 50 or
100 members where the machine holds 8. The fake answers HTTPS (the
driver's LXD client speaks only HTTPS or a local socket; it pins the
server's certificate by fingerprint, so a certificate made for the run
does) with the bodies a real LXD gave the driver's own requests on the
test bed (``Recorder``), replicated for N members:

- ``GET /1.0/cluster/members``: the recorded members, copied in turn
  with the names lxd1..lxdN and addresses 127.0.21.2.. (only text: the
  fake listens on one address);
- ``GET /1.0/instances?recursion=1``: the recorded first container,
  copied for each (name, Nova instance UUID, member) of the spec;
- any other recorded request; its ``target=lxdK`` answered with the
  recording of member ((K - 1) mod R) + 1 of the R recorded ones.

What was not recorded gets LXD's 404 and a line on stderr, which the
benchmark reports. Standard library only; run as a process of its own
(``python -m benchmarks.lxd_fake SPEC CERT KEY ADDRESS``), it prints
``listening on PORT`` and serves until stdin closes.
"""

import copy
import hashlib
import http.server
import json
import re
import ssl
import sys
import threading
from urllib import parse

MEMBERS_PATH = '/1.0/cluster/members'
INSTANCES_PATH = '/1.0/instances'
INSTANCE_UUID_KEY = 'user.nova.instance_uuid'   # nova_lxd.constants
MAX_MEMBERS = 250       # addresses 127.0.21.2 .. 127.0.21.251


def key(method, path, query):
    """What a request is recorded and looked up by (target apart)."""
    return '%s %s?%s' % (method.upper(), path, parse.urlencode(sorted(
        (k, v) for k, v in query.items() if k != 'target')))


def query_of(url):
    return {k: v[-1] for k, v in parse.parse_qs(
        parse.urlsplit(url).query, keep_blank_values=True).items()}


class Recorder:
    """Every HTTPS GET of requests' sessions, with its JSON answer.

    ``record(response)`` from a wrapper of ``requests.Session.request``.
    """

    def __init__(self):
        self.answers = {}       # key -> {target or '': body}
        self.members = []

    def record(self, method, url, response):
        if method.upper() != 'GET' or not url.startswith('https://'):
            return
        try:
            body = response.json()
        except ValueError:
            return
        path = parse.urlsplit(url).path
        query = query_of(url)
        self.answers.setdefault(key(method, path, query), {})[
            query.get('target', '')] = {'status': response.status_code,
                                        'body': body}
        if path == MEMBERS_PATH and isinstance(body.get('metadata'), list):
            found = [m['server_name'] for m in body['metadata']
                     if isinstance(m, dict)]
            if found:
                self.members = found

    def spec(self, instances):
        """The fake's spec: the recording and its containers.

        ``instances``: (container name, Nova instance UUID, member) of
        every container the fake lists.
        """
        return {'answers': self.answers, 'members': self.members,
                'instances': [list(i) for i in instances]}


def member_names(count):
    return ['lxd%d' % (i + 1) for i in range(count)]


def replicated_members(recorded, count):
    """The members listing of a cluster of ``count``, from a real one's."""
    if count > MAX_MEMBERS:
        raise ValueError('at most %d members' % MAX_MEMBERS)
    found = []
    for i, name in enumerate(member_names(count)):
        member = copy.deepcopy(recorded[i % len(recorded)])
        address = '127.0.21.%d' % (i + 2)
        member.update(server_name=name, url='https://%s:8443' % address)
        found.append(member)
    return found


def replicated_instances(template, instances):
    """An instance listing (recursion=1) of the spec's containers."""
    found = []
    for name, uuid, member in instances:
        one = copy.deepcopy(template)
        one.update(name=name, location=member)
        for config in ('config', 'expanded_config'):
            if isinstance(one.get(config), dict):
                one[config][INSTANCE_UUID_KEY] = uuid
        found.append(one)
    return found


class Fake:
    """The answers of a fake cluster of ``count`` members (no I/O)."""

    def __init__(self, spec, count, certificate=None):
        """``certificate``: the fake's own (PEM), which ``/1.0`` names."""
        self.answers = copy.deepcopy(spec['answers'])
        self.recorded = spec['members']
        self.count = count
        self.unknown = []
        for k, by_target in self.answers.items():
            path, query = k.split(' ', 1)[1], query_of(k.split(' ', 1)[1])
            path = path.split('?')[0]
            for recorded in by_target.values():
                body = recorded['body']
                if path == '/1.0' and certificate:
                    # Another cluster: its own certificate (node UUIDs
                    # are made from its fingerprint).
                    body['metadata']['environment'].update(
                        certificate=certificate,
                        certificate_fingerprint=hashlib.sha256(
                            ssl.PEM_cert_to_DER_cert(certificate)
                        ).hexdigest())
                if not isinstance(body.get('metadata'), list):
                    continue
                if path == MEMBERS_PATH and query.get('recursion') == '1':
                    body['metadata'] = replicated_members(
                        body['metadata'], count)
                elif (path == INSTANCES_PATH and
                        query.get('recursion') == '1' and
                        'filter' not in query):
                    template = next(iter(body['metadata']), None)
                    if template is None:
                        raise ValueError('the recorded listing %s has no '
                                         'container to copy' % k)
                    body['metadata'] = replicated_instances(
                        template, spec['instances'])

    def _answer(self, method, path, query):
        recorded = self.answers.get(key(method, path, query))
        if not recorded:
            return None
        target = query.get('target', '')
        if target:
            number = re.fullmatch(r'lxd(\d+)', target)
            if not number or not 0 < int(number.group(1)) <= self.count:
                return {'status': 404, 'body': error(
                    'Member "%s" not found' % target, 404)}
            target = self.recorded[(int(number.group(1)) - 1) %
                                   len(self.recorded)]
        return recorded.get(target) or next(iter(recorded.values()))

    def answer(self, method, url):
        """(status, body) for a request."""
        path = parse.urlsplit(url).path
        found = self._answer(method, path, query_of(url))
        if found is None:
            self.unknown.append('%s %s' % (method, url))
            return 404, error('not recorded by the fake', 404)
        return found['status'], found['body']


def error(text, code):
    return {'type': 'error', 'status': '', 'status_code': 0,
            'operation': '', 'error_code': code, 'error': text,
            'metadata': None}


def serve(fake, cert, key_file, address):
    """Start serving ``fake`` over HTTPS in a thread: (server, port)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = 'HTTP/1.1'     # keep-alive, as LXD
        disable_nagle_algorithm = True    # headers and body: no 40 ms wait

        def _reply(self):
            length = int(self.headers.get('Content-Length') or 0)
            if length:
                self.rfile.read(length)
            status, body = fake.answer(self.command, self.path)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            if status == 404 and fake.unknown:
                print('unrecorded: %s' % fake.unknown[-1], file=sys.stderr,
                      flush=True)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _reply

        def log_message(self, *args):
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key_file)
    server = http.server.ThreadingHTTPServer((address, 0), Handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def main():
    spec_file, count, cert, key_file, address = sys.argv[1:6]
    with open(spec_file) as f, open(cert) as pem:
        fake = Fake(json.load(f), int(count), pem.read())
    server, port = serve(fake, cert, key_file, address)
    print('listening on %d' % port, flush=True)
    sys.stdin.read()        # until the benchmark closes it
    server.shutdown()


if __name__ == '__main__':
    main()
