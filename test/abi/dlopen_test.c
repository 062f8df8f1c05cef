/* ABI smoke test: dlopen() the built library the way the Python (cffi/ctypes)
 * and Node bindings do, resolve every symbol listed in test/abi/symbols.txt
 * with dlsym(), and call the few functions that need no server.
 * Usage: dlopen_test <path/to/libesp.so.N> <symbols.txt> */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "esp.h"

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s LIBRARY SYMBOLS\n", argv[0]);
    return 2;
  }
  void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    fprintf(stderr, "dlopen: %s\n", dlerror());
    return 1;
  }
  FILE *f = fopen(argv[2], "r");
  if (!f) {
    perror(argv[2]);
    return 1;
  }
  char line[256];
  int n = 0, missing = 0;
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\r\n")] = '\0';
    if (!line[0]) continue;
    ++n;
    dlerror();
    if (!dlsym(lib, line)) {
      const char *err = dlerror();
      fprintf(stderr, "dlsym %s: %s\n", line, err ? err : "NULL");
      ++missing;
    }
  }
  fclose(f);

  /* Object pointers and function pointers share a representation on every
   * platform dlsym exists on; the memcpy keeps -pedantic quiet. */
  uint32_t (*version)(void);
  const char *(*version_string)(void);
  const char *(*strerror_fn)(int);
  void *sym;
  int ok = 1;
  sym = dlsym(lib, "esp_version");
  memcpy(&version, &sym, sizeof sym);
  sym = dlsym(lib, "esp_version_string");
  memcpy(&version_string, &sym, sizeof sym);
  sym = dlsym(lib, "esp_strerror");
  memcpy(&strerror_fn, &sym, sizeof sym);
  if (!version || version() != ESP_VERSION_NUMBER) {
    fprintf(stderr, "esp_version() does not match the header's %d\n", ESP_VERSION_NUMBER);
    ok = 0;
  }
  if (!version_string || strncmp(version_string(), ESP_VERSION_STRING, strlen(ESP_VERSION_STRING)) != 0) {
    fprintf(stderr, "esp_version_string() does not start with %s\n", ESP_VERSION_STRING);
    ok = 0;
  }
  if (!strerror_fn || strcmp(strerror_fn(-999), "unknown status") != 0) {
    fprintf(stderr, "esp_strerror(-999) is not \"unknown status\"\n");
    ok = 0;
  }
  /* Internal symbols stay hidden. */
  if (dlsym(lib, "_ZN3esp12parse_configEPKc")) {
    fprintf(stderr, "internal C++ symbol esp::parse_config is exported\n");
    ok = 0;
  }
  /* No dlclose: the library is linked -z nodelete (resolver threads may outlive it). */
  printf("dlopen_test: %d symbols resolved, %d missing, calls %s\n", n - missing, missing, ok ? "ok" : "FAILED");
  return missing == 0 && ok && n > 0 ? 0 : 1;
}
