"""Stand-ins for the host commands the DevStack plugin runs.

Called as ``fake_host.py <command> <args...>`` through small wrappers on
PATH (lxc, lxd, sudo, apt-get, systemctl, snap, usermod, groupadd,
openstack, pip). Every call is appended to ``$FAKE_HOST_DIR/calls`` (one
JSON list a line). lxc and lxd keep a small LXD state in
``$FAKE_HOST_DIR/lxd.json`` (pools, projects, trusted certificates,
instances, images, volumes, profiles, the last preseed), so that the
plugin's checks before each change see what its earlier changes made.
"""

import hashlib
import json
import os
import ssl
import sys

import yaml

DIR = os.environ['FAKE_HOST_DIR']
STATE = os.path.join(DIR, 'lxd.json')
SERVER_CERT = os.path.join(DIR, 'server.crt')


def _log(argv):
    with open(os.path.join(DIR, 'calls'), 'a') as f:
        f.write(json.dumps(argv) + '\n')


def _load():
    try:
        with open(STATE) as f:
            return json.load(f)
    except FileNotFoundError:
        return {'pools': [], 'projects': ['default'], 'certificates': {},
                'clustered': False, 'instances': {}, 'images': {},
                'volumes': {}, 'profiles': {}, 'preseeds': []}


def _save(state):
    with open(STATE, 'w') as f:
        json.dump(state, f, indent=1, sort_keys=True)


def _option(args, name, default=None):
    if name in args:
        return args[args.index(name) + 1]
    return default


def _fingerprint(path):
    with open(path) as f:
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read())).hexdigest()


def lxd(args, state):
    if args[:1] == ['waitready']:
        return 0
    if args[:2] == ['init', '--preseed']:
        preseed = yaml.safe_load(sys.stdin.read())
        state['preseeds'].append(preseed)
        for pool in preseed.get('storage_pools') or []:
            state['pools'].append(pool['name'])
        cluster = preseed.get('cluster') or {}
        if cluster.get('enabled'):
            state['clustered'] = True
            if cluster.get('cluster_token'):
                # A join: the cluster's pools come with it.
                state['pools'].append(os.environ.get('FAKE_CLUSTER_POOL',
                                                     'default'))
        return 0
    return 2


# lxc options that take a value.
VALUED = ('--project', '--format', '-c', '--name', '--target')


def _words(args):
    """The arguments without options (and their values)."""
    words, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in VALUED:
            skip = True
        elif not arg.startswith('-'):
            words.append(arg)
    return words


def lxc(args, state):
    project = _option(args, '--project', 'default')
    words = _words(args)
    if words[:2] == ['query', '/1.0']:
        with open(SERVER_CERT) as f:
            print(json.dumps({'environment': {
                'certificate': f.read(),
                'server_version': os.environ.get('FAKE_LXD_VERSION', '5.0.2'),
                'server_clustered': state['clustered']}}))
        return 0
    if words[:1] == ['query'] and words[1].startswith('/1.0/certificates/'):
        return 0 if words[1].rsplit('/', 1)[1] in state['certificates'] \
            else 1
    if words[:2] == ['storage', 'show']:
        return 0 if words[2] in state['pools'] else 1
    if words[:2] == ['storage', 'delete']:
        state['pools'].remove(words[2])
        return 0
    if words[:1] == ['query'] and '/volumes/custom?' in words[1]:
        # LXD 5.0: recursion=1 gives the volumes, each with its member.
        project = words[1].split('project=')[1].split('&')[0]
        print(json.dumps([{'name': name, 'type': 'custom',
                           'location': 'lxd1'}
                          for name in state['volumes'].get(project, [])]))
        return 0
    if words[:3] == ['storage', 'volume', 'delete']:
        if _option(args, '--target') != 'lxd1':
            print('Error: the volume is on lxd1: --target lxd1',
                  file=sys.stderr)
            return 1
        state['volumes'][project].remove(words[4])
        return 0
    if words[:2] == ['project', 'show']:
        return 0 if words[2] in state['projects'] else 1
    if words[:2] == ['project', 'create']:
        state['projects'].append(words[2])
        state.setdefault('project_config', {})[words[2]] = [
            args[i + 1] for i, a in enumerate(args) if a == '-c']
        return 0
    if words[:2] == ['project', 'delete']:
        busy = [k for k in ('instances', 'images', 'volumes')
                if state[k].get(words[2])]
        if busy or [p for p in state['profiles'].get(words[2], [])
                    if p != 'default']:
            print('Error: Only empty projects can be removed',
                  file=sys.stderr)
            return 1
        state['projects'].remove(words[2])
        return 0
    if words[:3] == ['config', 'trust', 'add']:
        state['certificates'][_fingerprint(words[3])] = _option(args,
                                                                '--name')
        return 0
    if words[:3] == ['config', 'trust', 'remove']:
        del state['certificates'][words[3]]
        return 0
    if words[:1] == ['list']:
        for name in state['instances'].get(project, {}):
            print(name)
        return 0
    if words[:1] == ['stop']:
        for name in words[1:]:
            state['instances'][project][name] = 'Stopped'
        return 0
    if words[:1] == ['delete']:
        del state['instances'][project][words[1]]
        return 0
    if words[:2] == ['image', 'list']:
        for fp in state['images'].get(project, []):
            print(fp)
        return 0
    if words[:2] == ['image', 'delete']:
        state['images'][project].remove(words[2])
        return 0
    if words[:2] == ['profile', 'list']:
        if '-c' in args:
            print('Error: unknown shorthand flag: \'c\' in -c',
                  file=sys.stderr)   # LXD 5.0 has none here
            return 1
        for name in ['default'] + state['profiles'].get(project, []):
            print('%s,,0' % name)
        return 0
    if words[:2] == ['profile', 'delete']:
        state['profiles'][project].remove(words[2])
        return 0
    print('fake lxc: unknown call %s' % args, file=sys.stderr)
    return 2


def openstack(args):
    # Nothing exists yet: "show" fails, so the plugin creates.
    words = [a for a in args if not a.startswith('--os-')]
    return 1 if 'show' in words else 0


def main():
    command, args = sys.argv[1], sys.argv[2:]
    _log([command] + args)
    if command in ('lxc', 'lxd'):
        state = _load()
        rc = (lxc if command == 'lxc' else lxd)(args, state)
        _save(state)
        return rc
    if command == 'openstack':
        return openstack(args)
    if command == 'snap' and args[:1] == ['list']:
        return 1    # no snap installed yet
    # apt-get, systemctl, snap, usermod, groupadd, pip: recorded only.
    return 0


if __name__ == '__main__':
    sys.exit(main())
