/*
 * oai_error.h — OpenAI-style JSON error bodies, as vLLM writes them:
 *   {"error":{"message":"…","type":"BadRequestError","param":null,"code":400}}
 * Only the body; the HTTP status and head are the caller's (see httpd_error).
 */
#ifndef CORE_OAI_ERROR_H
#define CORE_OAI_ERROR_H

#include "core/buf.h"

/* The error type name for an HTTP status ("BadRequestError", "NotFoundError",
 * "RateLimitError", "InternalServerError", "ServiceUnavailableError", ...). */
const char *oai_error_type(int status);
/* Appends the JSON error object to out. param NULL writes null. Returns 0, or -1
 * when out hit its cap. */
int oai_error_write(buf *out, int status, const char *message, const char *param);
/* The same with another type than the status's (OpenAI's rate limits say
 * "rate_limit_exceeded"). */
int oai_error_write_type(buf *out, int status, const char *type, const char *message, const char *param);

#endif
