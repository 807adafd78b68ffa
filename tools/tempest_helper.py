"""tools/tempest's Python half: tempest.conf for tools/cloud, and the summary.

    tempest_helper.py conf FILE --image ID --flavor ID --flavor-alt ID
                      --services compute,image,... [--network NAME]
        writes tempest.conf from the openrc's OS_* variables, what the
        cloud offers, and devstack/tempest-flags.ini (the flags the DevStack
        plugin writes too: one source).
    tempest_helper.py summary            (a subunit stream on stdin)
        prints passed/failed/skipped, each failure, and each skip's reason.

Standard library only, plus python-subunit for ``summary`` (tempest's
venv has it).
"""

import argparse
import collections
import configparser
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = os.path.join(REPO, 'devstack', 'tempest-flags.ini')

# Catalog service type -> tempest's [service_available] option.
SERVICES = {'compute': 'nova', 'image': 'glance', 'network': 'neutron',
            'volumev3': 'cinder', 'block-storage': 'cinder',
            'object-store': 'swift', 'placement': 'placement'}


def tempest_conf(env, image, flavor, flavor_alt, services, network=None,
                 compute_nodes=1):
    """A ConfigParser holding tempest.conf."""
    conf = configparser.ConfigParser(interpolation=None)
    conf.optionxform = str
    region = env.get('OS_REGION_NAME', 'RegionOne')
    conf['DEFAULT'] = {'log_file': 'tempest.log'}
    conf['auth'] = {
        'admin_username': env['OS_USERNAME'],
        'admin_password': env['OS_PASSWORD'],
        'admin_project_name': env['OS_PROJECT_NAME'],
        'admin_domain_name': env.get('OS_USER_DOMAIN_NAME', 'Default'),
        'use_dynamic_credentials': 'True',
        # Each test project would get a network, subnet and router; the
        # cloud's network is shared instead.
        'create_isolated_networks': 'False',
    }
    conf['identity'] = {'uri_v3': env['OS_AUTH_URL'], 'auth_version': 'v3',
                        'region': region}
    conf['identity-feature-enabled'] = {'api_v2': 'False'}
    conf['compute'] = {
        'image_ref': image, 'image_ref_alt': image,
        'flavor_ref': flavor, 'flavor_ref_alt': flavor_alt,
        'region': region, 'max_microversion': 'latest',
        # Containers boot in seconds; a loaded 2-core machine needs more.
        'build_timeout': '300',
        # Tempest runs its migration tests only with two or more.
        'min_compute_nodes': str(compute_nodes),
    }
    if network:
        conf['compute']['fixed_network_name'] = network
    conf['image'] = {'region': region}
    conf['network'] = {'region': region}
    available = {SERVICES[s] for s in services if s in SERVICES}
    conf['service_available'] = {
        name: str(name in available)
        for name in sorted(set(SERVICES.values()))}
    flags = configparser.ConfigParser(interpolation=None)
    flags.optionxform = str
    with open(FLAGS) as f:
        flags.read_file(f)
    for section in flags.sections():
        if not conf.has_section(section):
            conf.add_section(section)
        for key, value in flags.items(section):
            conf[section][key] = value
    return conf


def summary(stream, out):
    """Totals, failures and skip reasons of a subunit v2 stream."""
    import subunit
    import testtools

    results = {}
    reasons = {}

    class Collector(testtools.StreamResult):
        def status(self, test_id=None, test_status=None, file_name=None,
                   file_bytes=None, **kwargs):
            if not test_id:
                return
            if test_status:
                results[test_id] = test_status
            if file_name == 'reason' and file_bytes:
                reasons[test_id] = reasons.get(test_id, '') + \
                    bytes(file_bytes).decode('utf-8', 'replace')

    case = subunit.ByteStreamToStreamResult(stream, non_subunit_name='stdout')
    collector = Collector()
    collector.startTestRun()
    case.run(collector)
    collector.stopTestRun()
    counts = collections.Counter(
        {'success': 'passed', 'fail': 'failed', 'skip': 'skipped',
         'xfail': 'passed', 'uxsuccess': 'failed'}.get(s, s)
        for t, s in results.items() if s not in ('inprogress', 'exists'))
    failed = sorted(t for t, s in results.items()
                    if s in ('fail', 'uxsuccess'))
    skipped = collections.defaultdict(list)
    for test, state in results.items():
        if state == 'skip':
            skipped[reasons.get(test, '(no reason given)').strip()].append(
                test)
    for test in failed:
        out.write('FAILED  %s\n' % test)
    for reason, tests in sorted(skipped.items(), key=lambda i: -len(i[1])):
        out.write('SKIPPED %3d  %s\n' % (len(tests), reason))
        for test in sorted(tests)[:3]:
            out.write('             e.g. %s\n' % test)
    out.write('%d passed, %d failed, %d skipped\n' % (
        counts['passed'], counts['failed'], counts['skipped']))
    return 1 if counts['failed'] else 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog='tempest_helper.py')
    sub = parser.add_subparsers(dest='command', required=True)
    conf = sub.add_parser('conf')
    conf.add_argument('file')
    conf.add_argument('--image', required=True)
    conf.add_argument('--flavor', required=True)
    conf.add_argument('--flavor-alt', required=True)
    conf.add_argument('--services', required=True,
                      help='catalog service types, comma-separated')
    conf.add_argument('--network')
    conf.add_argument('--compute-nodes', type=int, default=1,
                      help='how many nova-compute services are up')
    sub.add_parser('summary')
    args = parser.parse_args(argv)
    if args.command == 'summary':
        return summary(sys.stdin.buffer, sys.stdout)
    found = tempest_conf(os.environ, args.image, args.flavor,
                         args.flavor_alt, args.services.split(','),
                         args.network, args.compute_nodes)
    with open(args.file, 'w') as f:
        found.write(f)
    return 0


if __name__ == '__main__':
    sys.exit(main())
