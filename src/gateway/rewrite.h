/*
 * rewrite.h — weighted model rewrites (the inference extension's
 * InferenceModelRewrite): a request naming a rewritten model goes to one of
 * its targets by weight, the body's `model` replaced, every other byte
 * forwarded as it came.
 *
 * The choice is pure: with a session key, the session's hash decides (the
 * same target for every request of the session); without, the n-th request
 * of the process takes the point frac(n x golden ratio) of the weights'
 * line, a low-discrepancy sequence, so over N requests each target's share
 * is within a few requests of its weight (no randomness to wait out).
 *
 * Not here: which pool serves the target (routing, pool.c), the session key
 * (picker_session_hash).
 */
#ifndef GATEWAY_REWRITE_H
#define GATEWAY_REWRITE_H

#include <stddef.h>
#include <stdint.h>
#include "core/buf.h"
#include "gateway/config.h"

/* The rewrite of model in cfg, or NULL. */
const gw_rewrite_cfg *rewrite_find(const gw_config *cfg, const char *model);
/* The target index for a request: by session (non-zero) or by seq. */
size_t rewrite_pick(const gw_rewrite_cfg *rw, uint64_t session, uint64_t seq);
/* body (len bytes) with its value bytes [at, at + vlen) replaced by model as
 * a JSON string (model NULL: left as it is), and, when insert is not NULL,
 * insert (a member and its comma) put right after the object's '{' at
 * object_at (< at), into out (reset first). 0, or -1 at out's cap or on
 * offsets out of the body. */
int rewrite_body(buf *out, const char *body, size_t len, size_t at, size_t vlen, const char *model,
		 size_t object_at, const char *insert);
/* The member the gateway adds to a stream's body that asks no usage, so the
 * answer's usage counts the tenant's tokens (resume drops the chunk again). */
#define REWRITE_USAGE_MEMBER "\"stream_options\":{\"include_usage\":true},"

#endif
