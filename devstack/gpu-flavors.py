"""GPU flavors for what ``nova-lxd-gpus --json`` (on stdin) found.

Prints one line per GPU model and resource class: the flavor name, then
the ``openstack flavor create`` options. Each flavor asks for one unit
of that class from a provider of that model (its CUSTOM_GPU_<VENDOR>_
<PRODUCT> trait); NVIDIA models also get the NVIDIA runtime libraries.
"""

import json
import sys

NVIDIA = '10de'
SIZE = ['--vcpus', '4', '--ram', '8192', '--disk', '20']


def _suffix(resource_class):
    if resource_class == 'PGPU':
        return 'whole'
    if resource_class == 'CUSTOM_SHARED_GPU':
        return 'shared'
    name = resource_class.replace('CUSTOM_', '', 1).lower()
    return name.replace('_', '-')


def flavors(report):
    found = {}
    for member in report.get('members', []):
        for provider in member.get('providers', []):
            vendor, _, product = provider['model'].partition(':')
            trait = 'CUSTOM_GPU_%s_%s' % (vendor.upper(), product.upper())
            for rc in sorted(provider['inventory']):
                name = 'lxd.gpu.%s-%s.%s' % (vendor, product, _suffix(rc))
                options = SIZE + ['--property', 'resources:%s=1' % rc,
                                  '--property', 'trait:%s=required' % trait]
                if vendor == NVIDIA:
                    options += ['--property', 'lxd:nvidia_runtime=true']
                found[name] = options
    return found


def main():
    for name, options in sorted(flavors(json.load(sys.stdin)).items()):
        print(' '.join([name] + options))


if __name__ == '__main__':
    main()
