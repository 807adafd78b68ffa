# Nova first: eventlet must patch ssl before requests/pylxd import it, or
# the late patching ends in a RecursionError.
from nova import monkey_patch
monkey_patch.patch()
