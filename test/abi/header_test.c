/* check-header: include/esp.h compiles as C99 and as C++17 with
 * -Wall -Wextra -pedantic -Werror, is self-contained (included first) and
 * idempotent (included twice), and its structs start with struct_size. */
#include "esp.h"
#include "esp.h"

#include <stddef.h>
#include <string.h>

#ifdef __cplusplus
#define ESP_STATIC_ASSERT(c, m) static_assert(c, #m)
#else
#define ESP_STATIC_ASSERT(c, m) typedef char esp_static_assert_##m[(c) ? 1 : -1]
#endif

ESP_STATIC_ASSERT(offsetof(esp_request_opts, struct_size) == 0, opts_size_first);
ESP_STATIC_ASSERT(offsetof(esp_callbacks, struct_size) == 0, callbacks_size_first);
ESP_STATIC_ASSERT(offsetof(esp_stream_item, struct_size) == 0, item_size_first);
ESP_STATIC_ASSERT(sizeof(esp_client) == 8 && sizeof(esp_call) == 8 && sizeof(esp_stream) == 8, handles_64bit);
ESP_STATIC_ASSERT(ESP_OK == 0 && ESP_EINVAL == -1 && ESP_EINTERNAL == -15 && ESP_EAGAIN == -16 && ESP_ERATELIMITED == -17, codes_fixed);

/* Every declaration is usable from this language. */
int header_test_use(void);
int header_test_use(void) {
  esp_request_opts o;
  esp_callbacks cb;
  esp_stream_item item;
  esp_header h;
  esp_log_fn fn = 0;
  memset(&o, 0, sizeof o);
  memset(&cb, 0, sizeof cb);
  memset(&item, 0, sizeof item);
  h.name = "a";
  h.value = "b";
  o.struct_size = (uint32_t)sizeof o;
  o.headers = &h;
  o.header_count = 1;
  cb.struct_size = (uint32_t)sizeof cb;
  item.struct_size = (uint32_t)sizeof item;
  (void)fn;
  {
    /* The initializer macros name every field: no -Wmissing-field-initializers. */
    esp_request_opts o2 = ESP_REQUEST_OPTS_INIT;
    esp_callbacks cb2 = ESP_CALLBACKS_INIT;
    esp_stream_item item2 = ESP_STREAM_ITEM_INIT;
    o2.timeout_ms = ESP_NO_TIMEOUT;
    if (o2.struct_size != sizeof o2 || cb2.struct_size != sizeof cb2 || item2.struct_size != sizeof item2) return -1;
  }
  return (int)(o.struct_size + cb.struct_size + item.struct_size) + ESP_VERSION_NUMBER + esp_last_error_sent() +
         (int)ESP_REQ_NO_RETRY + (int)ESP_REQ_STREAM_RAW + ESP_ITEM_EVENT + ESP_ITEM_CHUNK + ESP_LOG_DEBUG;
}
