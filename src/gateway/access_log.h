/*
 * access_log.h — one JSON line per proxied request (access_log.c), to
 * stdout or a file, flushed before the loop sleeps.
 */
#ifndef GATEWAY_ACCESS_LOG_H
#define GATEWAY_ACCESS_LOG_H

#include <stddef.h>
#include <stdint.h>
#include "gateway/gateway.h"

int access_log_open(gw *g, const char *where, char *err, size_t err_len);
void access_log_close(gw *g);
void access_log_write(gw *g, const gw_call *c, uint64_t now_ms);
void access_log_flush(gw *g);

#endif
