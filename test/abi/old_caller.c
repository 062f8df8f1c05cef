/* A program written and compiled against libesp 0.1.0's header (the frozen
 * copy in test/abi/v0.1.0/), run against the current library: the ABI
 * promise that structs only grow and old struct sizes stay accepted. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "esp.h" /* test/abi/v0.1.0/esp.h */

static int failures = 0;
#define CHECK(cond, what)                                                   \
  do {                                                                      \
    if (!(cond)) {                                                          \
      fprintf(stderr, "old_caller: FAILED %s: %s\n", what, esp_last_error()); \
      ++failures;                                                           \
    }                                                                       \
  } while (0)

static volatile int done_status = 1;
static void on_complete(void *user, int status, esp_response *resp) {
  (void)user;
  if (resp) {
    if (esp_response_status(resp) != 200) status = -100;
    esp_response_free(resp);
  }
  done_status = status;
}

int main(void) {
  const char *base = getenv("ESP_MOCK_HTTP");
  char config[512];
  esp_client client = 0;
  esp_request_opts o;
  esp_response *r = NULL;
  esp_callbacks cb;
  esp_stream s = 0;
  struct {
    esp_stream_item item;
    unsigned char canary[32]; /* where a newer library's fields would go */
  } slot;
  int rc, items = 0, i;
  struct timespec pause = {0, 10 * 1000 * 1000};
  if (!base) {
    fprintf(stderr, "old_caller: run me under test/mock/with-mock.sh\n");
    return 2;
  }
  snprintf(config, sizeof config, "{\"base_url\":\"%s/v1\",\"api_key\":\"sk-old\"}", base);
  CHECK(esp_client_get(config, &client) == ESP_OK, "esp_client_get");

  memset(&o, 0, sizeof o);
  o.struct_size = sizeof o; /* 0.1.0's size */
  o.path = "models";
  rc = esp_request(client, &o, &r);
  CHECK(rc == ESP_OK && esp_response_status(r) == 200, "esp_request with the 0.1.0 esp_request_opts");
  esp_response_free(r);

  memset(&cb, 0, sizeof cb);
  cb.struct_size = sizeof cb;
  cb.on_complete = on_complete;
  CHECK(esp_request_async(client, &o, &cb, NULL, NULL) == ESP_OK, "esp_request_async");
  for (i = 0; i < 500 && done_status == 1; ++i) nanosleep(&pause, NULL);
  CHECK(done_status == ESP_OK, "on_complete of the async call");

  o.path = "chat/completions";
  o.body = "{\"model\":\"m\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"a b c\"}]}";
  o.body_len = strlen((const char *)o.body);
  CHECK(esp_stream_open(client, &o, &s, NULL) == ESP_OK, "esp_stream_open");
  memset(&slot, 0x5a, sizeof slot);
  memset(&slot.item, 0, sizeof slot.item);
  slot.item.struct_size = sizeof slot.item; /* 0.1.0's size: no room for later fields */
  while ((rc = esp_stream_next(s, 5000, &slot.item)) == 1)
    if (slot.item.kind == ESP_ITEM_EVENT && slot.item.event.data) ++items;
  CHECK(rc == 0 && items > 0, "esp_stream_next with the 0.1.0 esp_stream_item");
  for (i = 0; i < (int)sizeof slot.canary; ++i)
    if (slot.canary[i] != 0x5a) break;
  CHECK(i == (int)sizeof slot.canary, "esp_stream_next wrote past the caller's struct_size");
  esp_stream_close(s);

  esp_client_release(client);
  CHECK(esp_shutdown(5000) == ESP_OK, "esp_shutdown");
  if (failures == 0) printf("old_caller: a 0.1.0 program works against libesp %s\n", esp_version_string());
  return failures ? 1 : 0;
}
