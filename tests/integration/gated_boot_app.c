/*
 * A test app whose workers cannot finish booting until the test says so:
 * qilin_app_init_v1 waits while the file GATE named by QILIN_TEST_BOOT_GATE
 * is missing, and creates GATE.PID first so the test knows this worker waits.
 * A TERM ends the wait, as it would a slow start-up that honours it: the
 * app's own handler notes it and passes it on to the worker's. A 30 s bound
 * keeps a failed test from leaving a worker waiting forever.
 * Every response names the process that ran the init (X-Initialised-By).
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app/qilin_app.h"

static struct sigaction worker_handler;
static int initialised_by; /* the pid that ran qilin_app_init_v1: a worker's, or the master's */
static volatile sig_atomic_t terminated;

static void note_term(int signal) {
  terminated = 1;
  if (worker_handler.sa_handler != SIG_DFL && worker_handler.sa_handler != SIG_IGN)
    worker_handler.sa_handler(signal);
}

int qilin_app_init_v1(void) {
  initialised_by = (int)getpid();
  const char *gate = getenv("QILIN_TEST_BOOT_GATE");
  if (gate == NULL) return 0;
  /* Before the marker: a TERM sent once the test sees it reaches note_term. */
  struct sigaction ours;
  memset(&ours, 0, sizeof ours);
  ours.sa_handler = note_term;
  sigemptyset(&ours.sa_mask);
  sigaction(SIGTERM, &ours, &worker_handler);
  char waiting[4096];
  snprintf(waiting, sizeof waiting, "%s.%d", gate, (int)getpid());
  int marker = open(waiting, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  if (marker >= 0) close(marker);
  const struct timespec tick = {.tv_sec = 0, .tv_nsec = 10 * 1000 * 1000};
  for (int waited = 0; !terminated && access(gate, F_OK) != 0 && waited < 3000; ++waited)
    nanosleep(&tick, NULL);
  sigaction(SIGTERM, &worker_handler, NULL);
  return 0;
}

int qilin_app_handle_v1(const qilin_request *request, qilin_response *response,
                        const qilin_response_api *api) {
  (void)request;
  static const char text[] = "booted\n";
  char pid[16];
  snprintf(pid, sizeof pid, "%d", initialised_by);
  api->set_status(response, 200);
  api->add_header(response, "X-Initialised-By", pid);
  api->write(response, text, strlen(text));
  return 0;
}
