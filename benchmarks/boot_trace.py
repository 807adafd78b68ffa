"""Where a boot's time goes on tools/cloud: one server, step by step.

On the cloud of ``tools/cloud up`` (its openrc sourced), a warm client
(openstacksdk, token and catalog fetched first, as Rally's) boots busybox
servers, each polled every 0.1 s until ACTIVE, then deleted: ``-n`` with a
Neutron port on cloud-net made beforehand and ``-n`` without a network,
alternately. For each, the services' logs (``$NOVA_LXD_CLOUD_DIR/log``,
INFO level) are read for the lines of that boot: those naming the server,
its port, or the request id Nova gave the boot (which the conductor,
scheduler, compute and Placement log with their own lines), and the
milestones below are taken from them, in seconds after the POST left the
client. The median of each milestone is printed for both kinds, and the
gaps between them: which service holds the time.

The busybox image is uploaded from the test bed when Glance lacks it, and
removed at the end, as is the flavor made for the run.

Run from the repository root, as root, with the cloud's venv:
    . /var/lib/nova-lxd-cloud/openrc; eval "$(tools/lxd-testbed env)"
    .cloud-venv/bin/python -m benchmarks.boot_trace [-n 5] [--show]
"""

import argparse
import datetime
import glob
import os
import re
import statistics
import sys
import time

import openstack as sdk

IMAGE = 'busybox'           # as cli-flow and Rally upload it
NETWORK = 'cloud-net'
BOOT_TIMEOUT = 300
PREFIX = 'boot-trace-%d' % os.getpid()
STAMP = re.compile(r'^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) ')
REQ = re.compile(r'\[(?:None )?(req-[0-9a-f-]{36})')

# (label, log file pattern, what the line says), in the order they happen.
MILESTONES = (
    ('API accepted (POST returned)', 'nova_api', 'POST /v2.1/servers"'),
    ('Placement: allocation claimed', 'placement-app', '"PUT /allocations/'),
    ('compute: resources claimed', 'nova-compute', 'Claim successful'),
    ('compute: port plugged (os-vif)', 'nova-compute',
     'Successfully plugged vif'),
    ('OVS agent: told of the port bound', 'neutron-ovs-agent', 'updated.'),
    ('OVS agent: port wired', 'neutron-ovs-agent',
     'Configuration for devices up'),
    ('API: network-vif-plugged from Neutron', 'nova_api',
     'network-vif-plugged'),
    ('compute: spawned', 'nova-compute', 'seconds to spawn'),
    ('compute: built', 'nova-compute', 'seconds to build'),
)


def stamp(line):
    match = STAMP.match(line)
    if not match:
        return None
    return datetime.datetime.strptime(
        match.group(1), '%Y-%m-%d %H:%M:%S.%f').timestamp()


def read_logs(folder, since):
    """(timestamp, file, line) of every log line from ``since`` on."""
    lines = []
    for path in glob.glob(os.path.join(folder, '*.log')):
        name = os.path.basename(path)[:-4]
        with open(path, errors='replace') as f:
            for line in f:
                when = stamp(line)
                if when is not None and when >= since - 1:
                    lines.append((when, name, line.rstrip()))
    return sorted(lines)


def this_boot(lines, server_id, port_id):
    """The lines of one boot: its server, port, or request ids."""
    keys = {server_id} | ({port_id} if port_id else set())
    requests = set()
    for _when, name, line in lines:
        if server_id in line and name.startswith('nova-compute'):
            requests.update(REQ.findall(line)[:1])
    keys |= requests
    return [entry for entry in lines if any(k in entry[2] for k in keys)]


def milestones(lines, posted, returned):
    found = {'API accepted (POST returned)': returned - posted}
    for label, log, text in MILESTONES:
        for when, name, line in lines:
            if label not in found and name.startswith(log) and text in line:
                found[label] = when - posted
    return found


class Trace:

    def __init__(self):
        self.cloud = sdk.connect()
        self.made = []
        self.folder = os.path.join(os.environ.get(
            'NOVA_LXD_CLOUD_DIR', '/var/lib/nova-lxd-cloud'), 'log')

    def setup(self):
        self.flavor = self.cloud.compute.create_flavor(
            name=PREFIX, vcpus=1, ram=128, disk=1)
        self.made.append(self.flavor)
        self.image = self.cloud.image.find_image(IMAGE)
        if self.image is None:
            self.image = self.cloud.image.create_image(
                IMAGE, filename=os.path.join(
                    os.environ['NOVA_LXD_TESTBED_DIR'], 'image',
                    os.environ['LXD_TESTBED_IMAGE'] + '.tar.gz'),
                disk_format='raw', container_format='bare', wait=True)
            self.made.append(self.image)
        self.network = self.cloud.network.find_network(
            NETWORK, ignore_missing=False)

    def cleanup(self):
        for made in reversed(self.made):
            if made is self.flavor:
                self.cloud.compute.delete_flavor(made)
            else:
                self.cloud.image.delete_image(made)

    def boot(self, name, with_port):
        port = server = None
        if with_port:
            port = self.cloud.network.create_port(
                network_id=self.network.id, name=name)
        try:
            posted = time.time()
            server = self.cloud.compute.create_server(
                name=name, flavor_id=self.flavor.id, image_id=self.image.id,
                networks=[{'port': port.id}] if port else 'none')
            returned = time.time()
            while server.status not in ('ACTIVE', 'ERROR'):
                if time.time() - posted > BOOT_TIMEOUT:
                    raise RuntimeError('%s not ACTIVE after %d s' % (
                        name, BOOT_TIMEOUT))
                time.sleep(0.1)
                server = self.cloud.compute.get_server(server.id)
            active = time.time() - posted
            if server.status != 'ACTIVE':
                raise RuntimeError('%s went to ERROR: %s' % (
                    name, server.fault))
        finally:
            # Nothing of a boot stays, whatever became of it.
            if server:
                self.cloud.compute.delete_server(server)
                self.cloud.compute.wait_for_delete(server, interval=0.2)
            if port:
                self.cloud.network.delete_port(port)
        time.sleep(1)       # the last log lines flushed
        lines = this_boot(read_logs(self.folder, posted), server.id,
                          port.id if port else None)
        found = milestones(lines, posted, returned)
        found['ACTIVE seen by the client'] = active
        return found, [(when - posted, name, line)
                       for when, name, line in lines]


def report(kind, runs):
    labels = [m[0] for m in MILESTONES] + ['ACTIVE seen by the client']
    print('%s, %d boots (median seconds after the POST left the client):'
          % (kind, len(runs)))
    previous = 0.0
    for label in labels:
        values = [r[label] for r in runs if label in r]
        if not values:
            continue
        median = statistics.median(values)
        print('  %-40s %6.2f s   (+%.2f)' % (label, median, median - previous))
        previous = median


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('-n', type=int, default=5, help='boots of each kind')
    parser.add_argument('--show', action='store_true',
                        help='print the log lines of the last boot of each')
    args = parser.parse_args()
    trace = Trace()
    runs = {True: [], False: []}
    shown = {}
    try:
        trace.setup()
        trace.boot('%s-warm-up' % PREFIX, True)
        for i in range(args.n):
            for with_port in (True, False):
                found, lines = trace.boot('%s-%d' % (PREFIX, i), with_port)
                runs[with_port].append(found)
                shown[with_port] = lines
    finally:
        trace.cleanup()
    report('busybox with a port on %s' % NETWORK, runs[True])
    report('busybox without a network', runs[False])
    if args.show:
        for with_port, lines in shown.items():
            print('\nlog lines of the last boot %s a port:' % (
                'with' if with_port else 'without'))
            for offset, name, line in lines:
                print('  %7.3f %-22s %s' % (offset, name, line[24:220]))
    return 0


if __name__ == '__main__':
    sys.exit(main())
