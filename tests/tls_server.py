"""A tiny HTTPS server for tests: python -m tests.tls_server CERT KEY.

It runs in its own process so that eventlet's monkey patching in the test
process cannot stall it. Prints its port, then serves until killed.
"""

import http.server
import ssl
import sys


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"type": "sync", "metadata": {}}'
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main(cert, key):
    httpd = http.server.HTTPServer(('127.0.0.1', 0), _Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    print(httpd.server_port, flush=True)
    httpd.serve_forever()


if __name__ == '__main__':
    main(*sys.argv[1:3])
