"""How a benchmark ends: its goal met or missed, as its exit status.

``benchmarks/run`` reads it: 0 the goal is met (PASS), GOAL_MISSED the
benchmark ran but missed its goal (FAIL); any other status (a traceback
exits 1) means it could not run.
"""

GOAL_MISSED = 3


def exit_status(passed):
    return 0 if passed else GOAL_MISSED
