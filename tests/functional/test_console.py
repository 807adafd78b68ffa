"""Consoles through Nova's API: the console log (``console log show``)."""

import time

from tests.functional import base

# What the guest writes to its console: UTF-8, invalid UTF-8, a NUL and
# escape sequences (printf's octal escapes in busybox's sh).
GUEST_BYTES = (r'\nnova-lxd-test: caf\303\251 \342\200\246 \377\376 \000'
               r'\033[1mbold\033[0m\n')
# What Nova makes of them: ASCII, every other byte U+FFFD; its API drops
# the control characters (NUL, ESC, CR).
SHOWN = ('nova-lxd-test: caf\ufffd\ufffd \ufffd\ufffd\ufffd \ufffd\ufffd '
         '[1mbold[0m')


class ConsoleLogTest(base.ServersTestCase):

    def console(self, server, length=None):
        body = {} if length is None else {'length': length}
        return self.api.post_server_action(
            server['id'], {'os-getConsoleOutput': body})['output']

    def guest_prints(self, server, printf_format):
        result = self.lxd.instances.get(
            server['OS-EXT-SRV-ATTR:instance_name']).execute(
            ['sh', '-c', "printf '%s' > /dev/console" % printf_format])
        self.assertEqual(0, result.exit_code, result.stderr)

    def booted(self):
        """A server whose console shows busybox's prompt (boot is over)."""
        server = self.boot()
        for _ in range(60):
            if 'Please press Enter' in self.console(server):
                return server
            time.sleep(0.5)
        self.fail('no prompt on the console: %s' % self.console(server))

    def test_any_bytes_and_the_last_lines(self):
        server = self.booted()
        self.guest_prints(server, GUEST_BYTES)
        self.guest_prints(server, r'second\nthird\n')
        output = self.console(server)
        self.assertIn('nova-lxd-busybox: booted', output)
        self.assertIn(SHOWN + '\nsecond\nthird\n', output)
        # --lines N: the last N pieces between newlines (the last one is
        # empty: the output ends with one).
        self.assertEqual(SHOWN + '\nsecond\nthird\n',
                         self.console(server, length=4))
        self.assertEqual('third\n', self.console(server, length=2))

    def test_kept_across_stop_start_and_reboots(self):
        server = self.booted()
        name = server['OS-EXT-SRV-ATTR:instance_name']
        booted = 'nova-lxd-busybox: booted %s' % name
        self.assertIn(booted, self.console(server))
        # Printed, never read, then stopped and started: the start empties
        # LXD's log file; the driver read it just before.
        self.guest_prints(server, r'\nunread before the stop\n')
        server = self._stop_server(server)
        server = self._start_server(server)
        self.guest_prints(server, r'\nunread before the reboot\n')
        server = self._reboot_server(server, hard=True)
        self.guest_prints(server, r'\nunread before the soft reboot\n')
        server = self._reboot_server(server, hard=False)
        self.guest_prints(server, r'\nlast\n')
        output = self.console(server)
        self.assertEqual(4, output.count(booted), output)
        # A clean stop runs the image's halt script; a hard reboot kills.
        self.assertEqual(2, output.count('nova-lxd-busybox: halting'))
        lines = [line for line in output.split('\n')
                 if 'unread' in line or 'halting' in line or line == 'last']
        self.assertEqual(['unread before the stop',
                          'nova-lxd-busybox: halting',
                          'unread before the reboot',
                          'unread before the soft reboot',
                          'nova-lxd-busybox: halting',
                          'last'], lines)
