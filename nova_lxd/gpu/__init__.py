"""GPUs of LXD cluster members: in Placement, and in containers.

discovery: LXD's ``GET /1.0/resources`` gpu section (+ NVML facts) ->
GPU card records, pure. nvml: the NVML facts of this host, the only I/O
here. options: the operator's ``[lxd] gpu_*`` options and their parser.
providers: cards + options -> one child provider per GPU model, and
applying those to Nova's ProviderTree without harming allocations.
assignment: allocations + what LXD's containers hold -> the gpu devices
of one container, pure. devices: GPUs, the room the driver asks for a
member's providers and a container's cards (under the member's lock).
"""
