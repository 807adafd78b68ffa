"""GPUs of LXD cluster members, as Placement sees them.

discovery: LXD's ``GET /1.0/resources`` gpu section (+ NVML facts) ->
GPU card records, pure. nvml: the NVML facts of this host, the only I/O
here. options: the operator's ``[lxd] gpu_*`` options and their parser.
inventory: cards + options -> one child provider per GPU model, and
applying those to Nova's ProviderTree without harming allocations.
"""
