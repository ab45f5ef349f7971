/*
 * filter_healthy.c — the health filters of the picker: never an endpoint this
 * request already tried (hard), never one the active checks say is down or
 * that left the configuration (hard), and not one passive detection ejected
 * (soft: a pool whose every endpoint is ejected still serves).
 */
#include "gateway/picker.h"

int filter_untried(const pk_view *v, const pk_params *p) { return !v->tried; }

int filter_healthy(const pk_view *v, const pk_params *p) { return v->available; }

int filter_not_ejected(const pk_view *v, const pk_params *p) { return !v->ejected; }
