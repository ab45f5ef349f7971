/*
 * resume.h — mid-stream failover: a stream whose upstream dies after the
 * client got its first byte continues on another endpoint, and the client's
 * stream goes on as if nothing happened (docs/resume.md).
 *
 * The proxy (proxy.c) hands a resumable call's SSE to resume_feed instead of
 * relaying the bytes itself; the events are relayed one by one as they
 * complete (an event is never held once whole, never sent in part). When the
 * stream breaks, resume_broken decides and returns an action the proxy
 * carries out: a continuation on an endpoint not tried yet, the stream ended
 * by the gateway (the generation had finished, or the upstream's own error
 * event), or the proxy's error event and [DONE]. Calls go one way: resume
 * never calls back into the proxy.
 * The pure rules (request, continuation body, chunk rewriting) are in
 * sse_splice.h.
 */
#ifndef GATEWAY_RESUME_H
#define GATEWAY_RESUME_H

#include <stddef.h>
#include "gateway/gateway.h"

typedef struct resume_state resume_state;

/* The pool's dialect (enum gw_dialect, never AUTO): configured, or what its
 * endpoints' metrics pages say (scrape.h); vLLM's when none was read
 * (SGLang and llama.cpp read its fields). */
int resume_dialect(const gw_pool *p);

/* The state of a call whose stream may be resumed: a streamed chat or
 * completions request to a pool with resume on, of one choice (sse_splice.h
 * lists what else makes a request not resumable), as the front door's one
 * reading of the body found it (req->resume). NULL otherwise (the stream
 * is then relayed as bytes, as before). */
resume_state *resume_new(gw_call *c, const gw_request *req);
void resume_free(resume_state *rs);

/* The body of the next attempt: the client's, or the continuation's. */
void resume_body(const resume_state *rs, const char **body, size_t *len);

/* A continuation's response head. Returns 0 to read its events, -1 to drop
 * it (not a 200 event stream: on_done follows and resume_broken decides). */
int resume_on_head(gw_call *c, int status, const http_header *h, size_t n);

enum resume_feed_result {
	RESUME_GO_ON = 0,
	RESUME_CLIENT_GONE, /* writing to the client failed: the proxy lets the upstream go */
	RESUME_ERROR_EVENT, /* the upstream sent an error event: let it go (a passive failure), then resume_broken */
	RESUME_TOO_LARGE,   /* an event over the caps: let the upstream go, then resume_broken */
};
/* Upstream body bytes of a resumable SSE response: relayed event by event. */
int resume_feed(gw_call *c, const char *data, size_t len);

/* 1 once the client's stream got its [DONE]. */
int resume_complete(const gw_call *c);

enum resume_action {
	RESUME_CONTINUE = 0, /* resume_body holds the continuation: let the endpoint go, attempt again */
	RESUME_END,          /* resume_flush what is left, then end the client's stream */
	RESUME_BROKEN,       /* not resumed: the proxy's error event and [DONE] for *err */
};
/* The upstream's stream ended badly after the head went out (*err, or
 * HC_ERR_EOF for an end before [DONE]); c->up is gone. Returns what the proxy
 * does next (enum resume_action); *err may change (a deadline). */
int resume_broken(gw_call *c, int *err);
/* Sends what the last call left for the client. 0, or -1 when it is gone. */
int resume_flush(gw_call *c);

#endif
