#include <esp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The smallest libesp program: one chat completion. Built in the tests with
   nothing but `pkg-config --cflags --libs esp` after `make install`. */
int main(void) {
  /* OpenAI by default; OPENAI_BASE_URL points it elsewhere (the tests: the mock server). */
  const char *base_url = getenv("OPENAI_BASE_URL");
  char config[512];
  snprintf(config, sizeof config, "{\"base_url\":\"%s\",\"api_key_env\":\"OPENAI_API_KEY\"}",
           base_url ? base_url : "https://api.openai.com/v1");
  esp_client client;
  if (esp_client_get(config, &client) != ESP_OK) {
    fprintf(stderr, "config: %s\n", esp_last_error());
    return 1;
  }
  const char *body = "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]}";
  esp_request_opts req = {0};
  req.struct_size = sizeof req;
  req.path = "chat/completions";
  req.body = body;
  req.body_len = strlen(body);
  esp_response *resp;
  int rc = esp_request(client, &req, &resp);
  if (rc != ESP_OK) {
    fprintf(stderr, "%s: %s\n", esp_strerror(rc), esp_last_error());
  } else {
    size_t len;
    const char *text = esp_response_body(resp, &len);
    printf("HTTP %d: %.*s\n", esp_response_status(resp), (int)len, text);
    esp_response_free(resp);
  }
  esp_client_release(client);
  return rc == ESP_OK ? 0 : 1;
}
