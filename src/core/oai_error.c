/*
 * oai_error.c — OpenAI/vLLM error bodies through the JSON writer.
 */
#include "core/oai_error.h"
#include "core/json.h"

const char *oai_error_type(int status)
{
	switch (status) {
	case 400: return "BadRequestError";
	case 401: return "AuthenticationError";
	case 403: return "PermissionDeniedError";
	case 404: return "NotFoundError";
	case 405: return "MethodNotAllowedError";
	case 408: return "RequestTimeoutError";
	case 409: return "ConflictError";
	case 413: return "RequestTooLargeError";
	case 422: return "UnprocessableEntityError";
	case 429: return "RateLimitError";
	case 431: return "BadRequestError";
	case 500: return "InternalServerError";
	case 501: return "NotImplementedError";
	case 502:
	case 503:
	case 504: return "ServiceUnavailableError";
	default:
		if (status >= 500) return "InternalServerError";
		return "BadRequestError";
	}
}

int oai_error_write(buf *out, int status, const char *message, const char *param)
{
	return oai_error_write_type(out, status, oai_error_type(status), message, param);
}

int oai_error_write_type(buf *out, int status, const char *type, const char *message, const char *param)
{
	json_w w;
	jw_init(&w, out);
	jw_obj_begin(&w);
	jw_key(&w, "error");
	jw_obj_begin(&w);
	jw_key(&w, "message");
	jw_str(&w, message ? message : "");
	jw_key(&w, "type");
	jw_str(&w, type);
	jw_key(&w, "param");
	jw_str(&w, param); /* NULL writes null */
	jw_key(&w, "code");
	jw_int(&w, status);
	jw_obj_end(&w);
	jw_obj_end(&w);
	return w.error ? -1 : 0;
}
