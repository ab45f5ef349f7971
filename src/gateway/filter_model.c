/*
 * filter_model.c — the picker's model filter: endpoints that serve the
 * request's model. For pools that list their models every endpoint serves
 * them; for the others, what the endpoint's GET /v1/models said (an endpoint
 * not asked yet counts as serving). Soft.
 */
#include "gateway/picker.h"

int filter_model(const pk_view *v, const pk_params *p) { return v->serves_model; }
