/*
 * An example app as a C shared library (see app/qilin_app.h). Run it with
 *     qilin build/release/app/libqilin_greeting.so
 * It answers every request with the method and target it was asked for, and
 * counts the requests this worker process has served.
 */
#include <stdio.h>

#include "app/qilin_app.h"

static unsigned long served;

int qilin_app_init_v1(void) {
  served = 0;
  return 0;
}

int qilin_app_handle_v1(const qilin_request *request, qilin_response *response,
                        const qilin_response_api *api) {
  char text[256];
  int n = snprintf(text, sizeof text, "greetings from a C library: %.*s %.*s (#%lu in this worker)\n",
                   (int)request->method_len, request->method, (int)(request->target_len > 100 ? 100 : request->target_len),
                   request->target, __atomic_add_fetch(&served, 1, __ATOMIC_RELAXED));
  if (n < 0) return 1;
  api->set_status(response, 200);
  api->add_header(response, "Content-Type", "text/plain");
  api->write(response, text, (size_t)n < sizeof text ? (size_t)n : sizeof text - 1);
  return 0;
}
