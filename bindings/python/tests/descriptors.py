"""libesp's own descriptors, the one rule every descriptor-bound test reads
(test_install.py, the framework tests): each I/O thread holds four (an epoll
set, an eventfd, libcurl's wake-up pair) once it has started, on its first
use; ESP_IO_THREADS pins how many may start, so the bound does not depend on
the machine's cores."""

from __future__ import annotations

IO_THREADS = 2
#: The environment a measured process runs with.
ENV = {"ESP_IO_THREADS": str(IO_THREADS)}
#: At most this many descriptors are libesp's own (fewer while some I/O
#: threads have had nothing to do).
LIBESP_OWN = 4 * IO_THREADS
