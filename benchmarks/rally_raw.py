"""Raw LXD create+start and delete of an image, as Rally's boot-and-delete.

The reference for ``benchmarks/rally/run``: on the test bed the cloud
uses, in an LXD project of its own (made here with the default project's
images and profiles, deleted at the end with what is in it), ``times``
containers of the test bed's copy of the image Rally boots, ``concurrency``
at once, as Rally's constant runner does: each ``lxc init`` + ``lxc
start`` (create + start, timed together) then ``lxc delete --force``
(stop + delete, timed), on the members in turn. As the driver does
(``LXD.create_instance``), a container with its own id map is created
without ``security.idmap.isolated``, at once with others, and the key
is set after, one container at a time per member (LXD 5.0 gives
containers given a range at the same moment the same host ids, and one
may then fail to start); the starts are not serialised. The container
is what the driver writes for the same flavor (limits.cpu, limits.memory
without swap, limits.processes, its own id map, root disk of the flavor's
size on the cloud's pool, no profile, boot.autostart off), without a
network device. One warm-up per member first (LXD copies the image to
the member), not counted.

Writes JSON for ``benchmarks/rally_report.py``:
    {"image": ..., "alias": ..., "runs": [{"concurrency": c,
     "iterations": [{"member": m, "create_start": s, "delete": s,
                     "error": null}, ...]}, ...]}

Run with LXD_DIR (and LXD_CONF) of a member of the test bed's cluster:
    python benchmarks/rally_raw.py --image busybox --alias nova-lxd-busybox \\
        --members lxd1 lxd2 --pool testbed --vcpus 1 --ram-mb 256 \\
        --disk-gb 1 --times 8 --concurrency 1 2 4 --out raw.json
"""

import argparse
import concurrent.futures
import contextlib
import json
import os
import subprocess
import sys
import threading
import time

PROJECT = 'nova-lxd-bench-rally'
TIMEOUT = 600
# The driver's default [lxd] max_processes.
MAX_PROCESSES = 4096
ISOLATED = 'security.idmap.isolated'


def body(vcpus, ram_mb, disk_gb, pool, max_processes=MAX_PROCESSES):
    """config and devices of the raw container (lxc launch's stdin)."""
    root = {'type': 'disk', 'path': '/', 'pool': pool}
    if disk_gb:
        root['size'] = '%dGiB' % disk_gb
    return {
        'config': {
            'limits.cpu': str(vcpus),
            'limits.memory': '%dMiB' % ram_mb,
            'limits.memory.swap': 'false',
            'limits.processes': str(max_processes),
            ISOLATED: 'true',
            'boot.autostart': 'false',
        },
        'devices': {'root': root},
    }


def plan(times, members, prefix):
    """(name, member) of each iteration: the members in turn."""
    return [('%s-%d' % (prefix, i), members[i % len(members)])
            for i in range(times)]


def lxc(*args, stdin=None):
    subprocess.run(('lxc',) + args, input=stdin, check=True,
                   capture_output=True, text=True, timeout=TIMEOUT)


def without_range(config):
    """The container's config (JSON) without its own id range."""
    found = json.loads(config)
    found['config'].pop(ISOLATED, None)
    return json.dumps(found)


def launch(alias, project, config, name, member, range_lock=None):
    """Create and start one container; SubprocessError when LXD fails.

    ``range_lock``: the member's lock for isolated containers, held while
    the created container is given its own id range.
    """
    lxc('init', alias, name, '--project', project, '--target',
        member, '--no-profiles',
        stdin=without_range(config) if range_lock else config)
    if range_lock:
        with range_lock:
            lxc('config', 'set', '--project', project, name,
                ISOLATED + '=true')
    lxc('start', '--project', project, name)


def iteration(alias, project, config, name, member, range_lock=None):
    """One create + start + delete: a result dict (seconds, or the error)."""
    result = {'member': member, 'create_start': None, 'delete': None,
              'error': None}
    start = time.monotonic()
    try:
        launch(alias, project, config, name, member, range_lock)
        result['create_start'] = time.monotonic() - start
        start = time.monotonic()
        lxc('delete', '--force', '--project', project, name)
        result['delete'] = time.monotonic() - start
    except subprocess.SubprocessError as e:
        result['error'] = '%s: %s' % (
            e, getattr(e, 'stderr', '') or '')
        with contextlib.suppress(subprocess.SubprocessError):
            lxc('delete', '--force', '--project', project, name)
    return result


def range_locks(config, members):
    """Per member, a lock for id ranges when the containers are isolated."""
    isolated = json.loads(config)['config'].get(ISOLATED) == 'true'
    return {m: threading.Lock() if isolated else None for m in members}


def run(alias, project, config, times, concurrency, members, prefix):
    locks = range_locks(config, members)
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        futures = [pool.submit(iteration, alias, project, config, name,
                               member, locks[member])
                   for name, member in plan(times, members, prefix)]
        return [f.result() for f in futures]


def ensure_project(project):
    """The project, with the default project's images and profiles."""
    try:
        lxc('project', 'show', project)
    except subprocess.CalledProcessError:
        lxc('project', 'create', project, '-c', 'features.images=false',
            '-c', 'features.profiles=false',
            '-c', 'features.storage.volumes=false')


def delete_project(project):
    """Every instance of the project, then the project."""
    with contextlib.suppress(subprocess.SubprocessError):
        out = subprocess.run(
            ['lxc', 'list', '--project', project, '--format', 'csv',
             '-c', 'n'], check=True, capture_output=True, text=True,
            timeout=TIMEOUT).stdout
        for name in out.split():
            lxc('delete', '--force', '--project', project, name)
    lxc('project', 'delete', project)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--image', required=True,
                        help="the image's name in Glance (for the report)")
    parser.add_argument('--alias', required=True,
                        help="the test bed's alias of the same image")
    parser.add_argument('--project', default=PROJECT)
    parser.add_argument('--members', nargs='+', required=True)
    parser.add_argument('--pool', required=True)
    parser.add_argument('--vcpus', type=int, default=1)
    parser.add_argument('--ram-mb', type=int, default=256)
    parser.add_argument('--disk-gb', type=int, default=1)
    parser.add_argument('--times', type=int, default=8)
    parser.add_argument('--concurrency', type=int, nargs='+',
                        default=[1, 2, 4])
    parser.add_argument('--out', required=True)
    args = parser.parse_args(argv)
    config = json.dumps(body(args.vcpus, args.ram_mb, args.disk_gb,
                             args.pool))
    prefix = 'rally-raw-%d' % os.getpid()
    result = {'image': args.image, 'alias': args.alias,
              'project': args.project, 'members': args.members,
              'config': json.loads(config), 'runs': []}
    ensure_project(args.project)
    try:
        warm = run(args.alias, args.project, config, len(args.members), 1,
                   args.members, prefix + '-warm')
        errors = [w['error'] for w in warm if w['error']]
        if errors:
            sys.exit('raw LXD warm-up failed: %s' % errors[0])
        for c in args.concurrency:
            iterations = run(args.alias, args.project, config, args.times,
                             c, args.members, '%s-c%d' % (prefix, c))
            result['runs'].append({'concurrency': c,
                                   'iterations': iterations})
    finally:
        delete_project(args.project)
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
