/*
 * qilin_app.h: the C entry point of an application shared library.
 *
 * A library passed as APP (any value with a '/' or ending in ".so") is opened
 * with dlopen(3) in each worker at boot and must export
 *
 *     int qilin_app_handle_v1(const qilin_request *request,
 *                             qilin_response *response,
 *                             const qilin_response_api *api);
 *
 * called once per request, on the worker's thread (several threads at once in
 * the `threaded` worker, so keep it reentrant). Pointers in `request` are valid
 * only during the call and are not NUL-terminated. Build the answer with the
 * `api` functions; return 0, or non-zero to have the server answer 500.
 * Optionally export `int qilin_app_init_v1(void)`, called once per worker at
 * boot; non-zero there stops the server with an app load error (exit code 4).
 *
 * The call is synchronous: under the event-loop workers it blocks the loop
 * for as long as it runs, like a WSGI app under a non-async gunicorn worker.
 */
#ifndef QILIN_APP_H
#define QILIN_APP_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  const char *name;
  size_t name_len;
  const char *value;
  size_t value_len;
} qilin_header;

typedef struct {
  const char *method;
  size_t method_len;
  const char *target;
  size_t target_len;
  const qilin_header *headers;
  size_t header_count;
  const char *body;
  size_t body_len;
} qilin_request;

typedef struct qilin_response qilin_response; /* opaque, owned by the server */

typedef struct {
  /* A final status, 200 to 599; anything else is answered 500 (and logged). */
  void (*set_status)(qilin_response *response, int status);
  /* NUL-terminated; the server copies both strings. */
  void (*add_header)(qilin_response *response, const char *name, const char *value);
  /* Appends to the body; the server copies the bytes. */
  void (*write)(qilin_response *response, const char *data, size_t len);
} qilin_response_api;

typedef int (*qilin_app_handle_v1_fn)(const qilin_request *, qilin_response *,
                                      const qilin_response_api *);
typedef int (*qilin_app_init_v1_fn)(void);

#ifdef __cplusplus
}
#endif

#endif /* QILIN_APP_H */
