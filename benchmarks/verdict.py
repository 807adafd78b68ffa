"""How a benchmark ends: its goal met or missed, as its exit status.

``benchmarks/run`` reads it: 0 the goal is met (PASS), GOAL_MISSED the
benchmark ran but missed its goal (FAIL); any other status (a traceback
exits 1) means it could not run.
"""

import statistics

GOAL_MISSED = 3


def exit_status(passed):
    return 0 if passed else GOAL_MISSED


def throughput(ratios, limit):
    """The boot storms' end: the rounds' median ratio against ``limit``.

    Printed; returns the exit status.
    """
    ratio = statistics.median(ratios)
    passed = ratio >= limit
    print('  throughput ratio %.2f against %.1f: %s' % (
        ratio, limit, 'PASS' if passed else 'FAIL'))
    return exit_status(passed)
