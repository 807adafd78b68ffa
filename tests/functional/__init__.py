"""Functional tests: Nova's services in-process against the LXD test bed.

Nova's ServiceFixture makes ``thread_pool_factory.shutdown_all_executors``
a no-op only while a test runs. A compute service stopped during a test
finishes its graceful shutdown (``cleanup_host``, which here also closes
serial console listeners, then ``shutdown_all_executors``) in a background
thread, which on a busy machine can end after the test: the real call then
shuts this process's executors for every later test ("Cannot create the
default thread pool executor because shutdown has been started"). It stays
a no-op in this test process.
"""

from nova import thread_pool_factory

thread_pool_factory.shutdown_all_executors = lambda: None
