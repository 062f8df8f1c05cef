"""One pool per process: another component (here ctypes, standing in for a C
extension) loads libesp.so.0 and takes a lease first; the esp package must
then use that same library, so esp.stats() shows the other side's client.
    python shared_pool.py /path/to/libesp.so.0
"""

import ctypes
import sys

other = ctypes.CDLL(sys.argv[1])
lease = ctypes.c_uint64()
config = b'{"base_url":"http://127.0.0.1:9/v1","name":"loaded-by-ctypes"}'
assert other.esp_client_get(config, ctypes.byref(lease)) == 0

import esp  # noqa: E402

where = esp.load()
names = [c.get("name") for c in esp.stats()["clients"]]
print("esp loaded:", where)
print("clients seen by esp:", names)
sys.exit(0 if "loaded-by-ctypes" in names else 1)
