/*
 * front.h — the front door: the handler the HTTP server calls for every
 * request (front.c dispatches on the path).
 */
#ifndef GATEWAY_FRONT_H
#define GATEWAY_FRONT_H

#include <stddef.h>
#include <stdint.h>
#include "gateway/gateway.h"

void front_handle(httpd_req *r, void *arg);

#endif
