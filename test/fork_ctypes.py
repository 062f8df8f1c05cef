"""fork() from Python, through ctypes only: a parent with a warm pool forks
four children that each make 100 requests while the parent keeps going.
Run by `make test-fork-python` with the mock server up (test/mock/with-mock.sh)."""
import ctypes
import json
import os
import sys


class Opts(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("method", ctypes.c_char_p), ("path", ctypes.c_char_p),
                ("headers", ctypes.c_void_p), ("header_count", ctypes.c_size_t), ("body", ctypes.c_char_p),
                ("body_len", ctypes.c_size_t), ("timeout_ms", ctypes.c_int64), ("flags", ctypes.c_uint32)]


lib = ctypes.CDLL(sys.argv[1])
lib.esp_client_get.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_uint64)]
lib.esp_request.argtypes = [ctypes.c_uint64, ctypes.POINTER(Opts), ctypes.POINTER(ctypes.c_void_p)]
lib.esp_response_status.argtypes = [ctypes.c_void_p]
lib.esp_response_free.argtypes = [ctypes.c_void_p]
lib.esp_last_error.restype = ctypes.c_char_p

config = json.dumps({"base_url": os.environ["ESP_MOCK_HTTPS"] + "/v1", "ca_file": os.environ["ESP_MOCK_CA"],
                     "api_key": "sk-fork"}).encode()
client = ctypes.c_uint64()
assert lib.esp_client_get(config, ctypes.byref(client)) == 0, lib.esp_last_error()
body = b'{"model":"m","messages":[{"role":"user","content":"fork"}]}'


def chat():
    opts = Opts(ctypes.sizeof(Opts), None, b"chat/completions", None, 0, body, len(body), 0, 0)
    resp = ctypes.c_void_p()
    rc = lib.esp_request(client, ctypes.byref(opts), ctypes.byref(resp))
    status = lib.esp_response_status(resp) if rc == 0 else rc
    lib.esp_response_free(resp)
    return status == 200


assert all(chat() for _ in range(10))
children = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        ok = sum(chat() for _ in range(100))
        os._exit(0 if ok == 100 else 1)
    children.append(pid)
parent_ok = sum(chat() for _ in range(100))
codes = [os.waitpid(pid, 0)[1] for pid in children]
print(f"fork via ctypes: parent {parent_ok}/100, children exit codes {codes}")
sys.exit(0 if parent_ok == 100 and codes == [0, 0, 0, 0] else 1)
