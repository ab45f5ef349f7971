/*
 * discovery_k8s.c — the Kubernetes backend of discovery: the EndpointSlices of
 * one Service, listed then watched through the API server, over HTTPS on the
 * event loop.
 *
 * The informer pattern, by hand: LIST the slices labelled
 * kubernetes.io/service-name=SERVICE (the whole set and its resourceVersion),
 * publish the ready addresses, then WATCH from that version: each ADDED,
 * MODIFIED or DELETED event updates one slice and publishes the new set at once
 * (so a scale-down is seen in the time the API server takes to tell us), a
 * BOOKMARK only moves the version. When the server ends the watch (it does after
 * timeoutSeconds) we watch again from the last version; a 410 Gone (the version
 * is too old) or any error lists again, after interval_ms for errors. A failure
 * keeps the last known set.
 *
 * An endpoint counts when its conditions.ready is true or absent (the API's
 * "unknown, treat as ready"); terminating endpoints are not ready. The port is
 * the slice port named k8s_port_name, or the slice's first port.
 *
 * Transport: a TCP connection made non-blocking with core/net.h, TLS with
 * OpenSSL (the CA file of the service account, the peer's name or IP checked),
 * the response head parsed by core/http.h, a chunked body decoded by its
 * decoder, each watch line and the list read by core/json.h. The service
 * account token is read from its file at each connection (projected tokens
 * rotate). One connection at a time; every phase has a timeout.
 *
 * Not here: other resource kinds, label selectors other than the Service's,
 * HTTP/2, client certificates, proxies.
 */
#include "gateway/discovery_int.h"
#include "core/buf.h"
#include "core/http.h"
#include "core/json.h"
#include "core/log.h"
#include "core/net.h"
#include "core/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define K8S_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
#define K8S_MAX_SLICES 256
#define K8S_MAX_HEAD_BYTES 65536
#define K8S_MAX_LINE_BYTES (8u << 20)  /* one watch event */
#define K8S_MAX_LIST_BYTES (32u << 20) /* one list answer */
#define K8S_MAX_TOKEN_BYTES 16384
#define K8S_READ_BYTES 16384

enum k8s_phase { K8S_IDLE,
		 K8S_CONNECTING,
		 K8S_HANDSHAKE,
		 K8S_SENDING,
		 K8S_HEAD,
		 K8S_BODY };
enum k8s_mode { K8S_LIST,
		K8S_WATCH };

/* One EndpointSlice's ready addresses. */
typedef struct k8s_slice {
	char name[254];
	discovery_addr *addrs; /* n, owned */
	size_t n;
} k8s_slice;

/* The backend's state. Owner: its discovery (impl). */
typedef struct k8s_state {
	discovery *d;
	net_addr api;
	char host[NET_ADDR_STRLEN]; /* the Host header: k8s_api as given */
	char verify_name[256];      /* name or IP the certificate must carry */
	char token_path[256], ca_path[256], ns[64];
	char rv[64]; /* resourceVersion to watch from; "" = list first */

	k8s_slice slices[K8S_MAX_SLICES];
	size_t n_slices;

	/* the connection */
	int phase, mode;
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
	buf out;  /* request bytes not yet written */
	buf in;   /* raw response bytes (head, then body before decoding) */
	buf body; /* decoded body: watch lines, or the list */
	http_body_kind framing;
	uint64_t body_left; /* HTTP_BODY_LENGTH */
	http_chunked chunked;
	int status;
	uint64_t io_timer, retry_timer;
	uint64_t events_total;
} k8s_state;

static void conn_start(k8s_state *s, int mode);

/* ------------------------------------------------------------ slices */

static void slice_clear(k8s_slice *sl)
{
	free(sl->addrs);
	sl->addrs = NULL;
	sl->n = 0;
}

static void slices_clear(k8s_state *s)
{
	for (size_t i = 0; i < s->n_slices; i++) slice_clear(&s->slices[i]);
	s->n_slices = 0;
}

static k8s_slice *slice_find(k8s_state *s, const char *name)
{
	for (size_t i = 0; i < s->n_slices; i++)
		if (strcmp(s->slices[i].name, name) == 0) return &s->slices[i];
	return NULL;
}

static void slice_delete(k8s_state *s, const char *name)
{
	k8s_slice *sl = slice_find(s, name);
	if (!sl) return;
	slice_clear(sl);
	*sl = s->slices[--s->n_slices];
}

/* The port of a slice for us: the one named k8s_port_name, else the first;
 * the spec's port when the slice lists none. 0 when nothing fits. */
static uint16_t slice_port(const k8s_state *s, const json_val *obj)
{
	const json_val *ports = json_get(obj, "ports");
	const char *want = s->d->spec.k8s_port_name;
	for (size_t i = 0; i < json_count(ports); i++) {
		const json_val *p = json_at(ports, i);
		int64_t port;
		if (json_int64(json_get(p, "port"), &port) < 0 || port < 1 || port > 65535) continue;
		if (!want[0] || strcmp(json_str(json_get(p, "name"), ""), want) == 0) return (uint16_t)port;
	}
	return want[0] ? 0 : s->d->spec.port;
}

/* Replaces (or adds) the slice obj. Returns 0, or -1 when it is not a slice. */
static int slice_put(k8s_state *s, const json_val *obj)
{
	const char *name = json_str(json_get(json_get(obj, "metadata"), "name"), NULL);
	if (!name || strlen(name) >= sizeof(s->slices[0].name)) return -1;
	const char *type = json_str(json_get(obj, "addressType"), "IPv4");
	int family = strcmp(type, "IPv4") == 0 ? AF_INET : strcmp(type, "IPv6") == 0 ? AF_INET6
										     : 0;
	uint16_t port = slice_port(s, obj);
	const json_val *eps = json_get(obj, "endpoints");
	size_t cap = 0;
	for (size_t i = 0; i < json_count(eps); i++) cap += json_count(json_get(json_at(eps, i), "addresses"));
	if (cap > DISCOVERY_MAX_ADDRS) {
		s->d->st.dropped_total += cap - DISCOVERY_MAX_ADDRS;
		cap = DISCOVERY_MAX_ADDRS;
	}
	discovery_addr *addrs = cap ? calloc(cap, sizeof(*addrs)) : NULL;
	if (cap && !addrs) return -1;
	size_t n = 0;
	for (size_t i = 0; family && port && i < json_count(eps); i++) {
		const json_val *ep = json_at(eps, i);
		/* ready: true, or absent ("unknown": the API says treat it as ready) */
		if (!json_bool(json_get(json_get(ep, "conditions"), "ready"), 1)) continue;
		const json_val *as = json_get(ep, "addresses");
		for (size_t k = 0; k < json_count(as) && n < cap; k++) {
			const char *text = json_str(json_at(as, k), "");
			unsigned char ip[16];
			if (inet_pton(family, text, ip) != 1) continue;
			if (discovery_addr_format(&addrs[n], family, ip, port) == 0) n++;
		}
	}
	k8s_slice *sl = slice_find(s, name);
	if (!sl) {
		if (s->n_slices == K8S_MAX_SLICES) {
			free(addrs);
			s->d->st.dropped_total++;
			return 0;
		}
		sl = &s->slices[s->n_slices++];
		str_copy(sl->name, name, sizeof(sl->name));
		sl->addrs = NULL;
		sl->n = 0;
	}
	slice_clear(sl);
	sl->addrs = addrs;
	sl->n = n;
	return 0;
}

/* Publishes the union of every slice. Returns 1 when d was freed. */
static int publish(k8s_state *s)
{
	discovery_addr *all = calloc(DISCOVERY_MAX_ADDRS * 2, sizeof(*all));
	if (!all) {
		discovery_fail(s->d, "out of memory");
		return 0;
	}
	size_t n = 0;
	for (size_t i = 0; i < s->n_slices; i++)
		for (size_t k = 0; k < s->slices[i].n; k++) {
			if (n == DISCOVERY_MAX_ADDRS * 2) {
				s->d->st.dropped_total++;
				continue;
			}
			all[n++] = s->slices[i].addrs[k];
		}
	int gone = discovery_publish(s->d, all, n);
	free(all);
	return gone;
}

/* ------------------------------------------------------------ connection */

static void conn_close(k8s_state *s)
{
	if (s->ssl) {
		SSL_free(s->ssl);
		s->ssl = NULL;
	}
	if (s->ctx) {
		SSL_CTX_free(s->ctx);
		s->ctx = NULL;
	}
	if (s->fd >= 0) {
		ev_del(s->d->loop, s->fd);
		close(s->fd);
		s->fd = -1;
	}
	ev_timer_del(s->d->loop, s->io_timer);
	s->io_timer = 0;
	buf_reset(&s->out);
	buf_reset(&s->in);
	buf_reset(&s->body);
	s->phase = K8S_IDLE;
}

static int64_t retry_cb(ev_loop *loop, uint64_t id, void *arg)
{
	k8s_state *s = arg;
	s->retry_timer = 0;
	conn_start(s, s->rv[0] ? K8S_WATCH : K8S_LIST);
	return -1;
}

/* The connection failed: counted, and a fresh list after interval_ms. */
static void conn_fail(k8s_state *s, const char *what, const char *detail)
{
	conn_close(s);
	s->rv[0] = '\0';
	ev_timer_del(s->d->loop, s->retry_timer);
	s->retry_timer = ev_timer_add(s->d->loop, s->d->spec.interval_ms, retry_cb, s);
	discovery_fail(s->d, "kubernetes %s: %s%s%s", s->mode == K8S_LIST ? "list" : "watch", what,
		       detail[0] ? ": " : "", detail);
}

static const char *ssl_reason(void)
{
	static char text[160];
	unsigned long e = ERR_get_error();
	if (!e) return errno ? strerror(errno) : "connection closed";
	ERR_error_string_n(e, text, sizeof(text));
	ERR_clear_error();
	return text;
}

static int64_t io_timeout_cb(ev_loop *loop, uint64_t id, void *arg)
{
	k8s_state *s = arg;
	s->io_timer = 0;
	static const char *const phases[] = {"idle", "connect", "TLS handshake", "request", "response head",
					     "response body"};
	conn_fail(s, "timeout", phases[s->phase]);
	return -1;
}

static void io_timer_set(k8s_state *s, uint64_t ms)
{
	if (!s->io_timer || ev_timer_set(s->d->loop, s->io_timer, ms) < 0)
		s->io_timer = ev_timer_add(s->d->loop, ms, io_timeout_cb, s);
}

/* Reads a small file (the token, the namespace) into out, trimmed. */
static int read_small_file(const char *path, char *out, size_t cap)
{
	FILE *f = fopen(path, "re");
	if (!f) return -1;
	size_t n = fread(out, 1, cap - 1, f);
	int err = ferror(f) || (n == cap - 1 && fgetc(f) != EOF);
	fclose(f);
	if (err) return -1;
	while (n && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' ')) n--;
	out[n] = '\0';
	return 0;
}

/* Appends s URL-encoded (RFC 3986 unreserved kept) to b. */
static int url_escape(buf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		int keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
			   c == '.' || c == '_' || c == '~';
		if ((keep ? buf_append(b, s, 1) : buf_printf(b, "%%%02X", c)) < 0) return -1;
	}
	return 0;
}

static void on_io(ev_loop *loop, int fd, int mask, void *arg);

static void conn_start(k8s_state *s, int mode)
{
	discovery *d = s->d;
	conn_close(s);
	s->mode = mode;
	char token[K8S_MAX_TOKEN_BYTES];
	if (read_small_file(s->token_path, token, sizeof(token)) < 0 || !token[0] || strpbrk(token, "\r\n")) {
		conn_fail(s, "cannot read the service account token", s->token_path);
		return;
	}
	/* The request. */
	buf target;
	buf_init(&target, 4096);
	buf_printf(&target, "/apis/discovery.k8s.io/v1/namespaces/");
	url_escape(&target, s->ns);
	buf_puts(&target, "/endpointslices?labelSelector=");
	url_escape(&target, "kubernetes.io/service-name=");
	url_escape(&target, d->spec.k8s_service);
	if (mode == K8S_WATCH) {
		buf_puts(&target, "&watch=1&allowWatchBookmarks=true&resourceVersion=");
		url_escape(&target, s->rv);
		buf_printf(&target, "&timeoutSeconds=%u", d->spec.k8s_watch_timeout_s);
	}
	buf hdr;
	buf_init(&hdr, K8S_MAX_TOKEN_BYTES + 256);
	buf_printf(&hdr, "Authorization: Bearer %s\r\nAccept: application/json\r\nUser-Agent: infergate\r\n", token);
	int rc = http_write_request_head(&s->out, "GET", buf_rptr(&target), s->host, buf_rptr(&hdr), -1);
	explicit_bzero(token, sizeof(token));
	if (hdr.data) explicit_bzero(hdr.data, hdr.cap);
	buf_free(&hdr);
	buf_free(&target);
	if (rc < 0) {
		conn_fail(s, "cannot write the request", "");
		return;
	}
	/* TLS context: the CA file is read at each connection (it may rotate). */
	s->ctx = SSL_CTX_new(TLS_client_method());
	if (!s->ctx || SSL_CTX_set_min_proto_version(s->ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_load_verify_locations(s->ctx, s->ca_path, NULL) != 1) {
		conn_fail(s, "cannot load the CA certificate", s->ca_path);
		return;
	}
	SSL_CTX_set_verify(s->ctx, SSL_VERIFY_PEER, NULL);
	/* A close without close_notify ends a watch like any close (the body's
	 * framing still tells a cut list from a whole one). */
	SSL_CTX_set_options(s->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	s->fd = net_connect(&s->api);
	if (s->fd < 0) {
		conn_fail(s, "connect", strerror(errno));
		return;
	}
	if (ev_set(d->loop, s->fd, EV_WRITE, on_io, s) < 0) {
		conn_fail(s, "event loop", strerror(errno));
		return;
	}
	s->phase = K8S_CONNECTING;
	s->status = 0;
	io_timer_set(s, d->spec.timeout_ms);
}

/* Makes the TLS session on the connected socket. */
static int tls_setup(k8s_state *s)
{
	s->ssl = SSL_new(s->ctx);
	if (!s->ssl || SSL_set_fd(s->ssl, s->fd) != 1) return -1;
	unsigned char ip[16];
	int is_ip = inet_pton(AF_INET, s->verify_name, ip) == 1 || inet_pton(AF_INET6, s->verify_name, ip) == 1;
	if (is_ip) {
		if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s->ssl), s->verify_name) != 1) return -1;
	} else {
		if (SSL_set_tlsext_host_name(s->ssl, s->verify_name) != 1) return -1;
		if (SSL_set1_host(s->ssl, s->verify_name) != 1) return -1;
	}
	SSL_set_connect_state(s->ssl);
	return 0;
}

/* Sets the loop interest after an SSL call said what it wants. */
static void want(k8s_state *s, int ssl_err)
{
	ev_mod(s->d->loop, s->fd, ssl_err == SSL_ERROR_WANT_WRITE ? EV_WRITE : EV_READ);
}

/* ------------------------------------------------------------ events */

/* What one watch line did (watch_apply). */
enum k8s_watch_result {
	K8S_W_IGNORED,  /* an unknown type: nothing changed */
	K8S_W_BOOKMARK, /* only the version moved */
	K8S_W_CHANGED,  /* a slice was added, replaced or deleted: publish */
	K8S_W_GONE,     /* 410: the version is too old, list again */
	K8S_W_ERROR,    /* an ERROR event other than 410 */
	K8S_W_MALFORMED /* not JSON, or a change without an object name */
};

/* Applies one watch line (a JSON event, len bytes, no newline) to the slice
 * table and the version: no I/O, no publishing, so it can be tested and
 * fuzzed alone. Returns a K8S_W_*; for GONE, ERROR and MALFORMED, why says
 * what (why_len bytes at most). */
static int watch_apply(k8s_state *s, const char *line, size_t len, char *why, size_t why_len)
{
	why[0] = '\0';
	json_error je;
	json_doc *doc = json_parse(line, len, 0, &je);
	if (!doc) {
		char head[33];
		size_t k;
		for (k = 0; k < len && k < 32; k++) head[k] = line[k] >= 32 && line[k] < 127 ? line[k] : '?';
		head[k] = '\0';
		snprintf(why, why_len, "col %u: %s (\"%s\")", je.col, je.msg, head);
		return K8S_W_MALFORMED;
	}
	const json_val *root = json_root(doc);
	const char *type = json_str(json_get(root, "type"), "");
	const json_val *obj = json_get(root, "object");
	const char *rv = json_str(json_get(json_get(obj, "metadata"), "resourceVersion"), NULL);
	int rc = K8S_W_IGNORED;
	if (strcmp(type, "ERROR") == 0) {
		int64_t code = 0;
		json_int64(json_get(obj, "code"), &code);
		snprintf(why, why_len, "%lld %s", (long long)code, json_str(json_get(obj, "message"), ""));
		rc = code == 410 ? K8S_W_GONE : K8S_W_ERROR;
	} else if (strcmp(type, "BOOKMARK") == 0) {
		if (rv) str_copy(s->rv, rv, sizeof(s->rv));
		rc = K8S_W_BOOKMARK;
	} else if (strcmp(type, "ADDED") == 0 || strcmp(type, "MODIFIED") == 0 || strcmp(type, "DELETED") == 0) {
		/* A slice is known by its name: an empty one, or one with a NUL
		 * inside (read as a shorter name), would stand for another. */
		const char *name = json_cstr(json_get(json_get(obj, "metadata"), "name"));
		if (!name || !*name) {
			snprintf(why, why_len, "%s without an object name", type);
			rc = K8S_W_MALFORMED;
		} else {
			if (type[0] == 'D')
				slice_delete(s, name);
			else if (slice_put(s, obj) < 0)
				s->d->st.dropped_total++;
			if (rv) str_copy(s->rv, rv, sizeof(s->rv));
			s->events_total++;
			rc = K8S_W_CHANGED;
		}
	} else {
		log_ratelimited(LOG_DEBUG, "discovery of %s: watch event of type \"%s\" ignored", s->d->spec.name, type);
	}
	json_doc_free(doc);
	return rc;
}

/* One watch event (a line). Returns 1 when d was freed, -1 when the
 * connection must be dropped (done here), 0 to go on. */
static int watch_event(k8s_state *s, const char *line, size_t len)
{
	char why[192];
	switch (watch_apply(s, line, len, why, sizeof(why))) {
	case K8S_W_MALFORMED:
		conn_fail(s, "malformed watch event", why);
		return -1;
	case K8S_W_GONE: /* the version is too old: list again now, not an error */
		log_info("discovery of %s: watch expired (410), listing again", s->d->spec.name);
		conn_close(s);
		s->rv[0] = '\0';
		conn_start(s, K8S_LIST);
		return -1;
	case K8S_W_ERROR:
		conn_fail(s, "error event", why);
		return -1;
	case K8S_W_CHANGED:
		return publish(s);
	default:
		return 0;
	}
}

/* The whole list answer: the set published, the watch started on a new
 * connection. Returns 1 when d was freed, else -1 (this connection is gone). */
static int list_done(k8s_state *s)
{
	json_error je;
	json_doc *doc = json_parse(buf_rptr(&s->body), buf_rlen(&s->body), 0, &je);
	if (!doc) {
		char why[192];
		snprintf(why, sizeof(why), "line %u col %u: %s", je.line, je.col, je.msg);
		conn_fail(s, "malformed list", why);
		return -1;
	}
	const json_val *root = json_root(doc);
	const char *rv = json_str(json_get(json_get(root, "metadata"), "resourceVersion"), "");
	const json_val *items = json_get(root, "items");
	if (!rv[0] || strlen(rv) >= sizeof(s->rv) || (items && !json_is(items, JSON_ARRAY))) {
		json_doc_free(doc);
		conn_fail(s, "list without items or resourceVersion", "");
		return -1;
	}
	slices_clear(s);
	for (size_t i = 0; i < json_count(items); i++)
		if (slice_put(s, json_at(items, i)) < 0) s->d->st.dropped_total++;
	str_copy(s->rv, rv, sizeof(s->rv));
	json_doc_free(doc);
	conn_close(s);
	if (publish(s)) return 1;
	conn_start(s, K8S_WATCH);
	return -1; /* this connection is gone; the watch has its own */
}

/* Decoded body bytes arrived. Returns 1 when d was freed, -1 when the
 * connection is gone (closed, failed or restarted), 0 to go on. */
static int body_bytes(k8s_state *s, const char *p, size_t n)
{
	size_t cap = s->mode == K8S_LIST ? K8S_MAX_LIST_BYTES : K8S_MAX_LINE_BYTES;
	if (buf_rlen(&s->body) + n > cap) {
		conn_fail(s, s->mode == K8S_LIST ? "list over its size cap" : "watch event over its size cap", "");
		return -1;
	}
	if (buf_append(&s->body, p, n) < 0) {
		conn_fail(s, "out of memory", "");
		return -1;
	}
	if (s->mode == K8S_LIST) return 0;
	for (;;) {
		char *start = buf_rptr(&s->body);
		char *nl = memchr(start, '\n', buf_rlen(&s->body));
		if (!nl) return 0;
		size_t len = (size_t)(nl - start);
		int rc = 0;
		if (len) rc = watch_event(s, start, len);
		if (rc) return rc;
		buf_consume(&s->body, len + 1);
	}
}

/* The response ended cleanly. */
static int body_end(k8s_state *s)
{
	if (s->mode == K8S_LIST) return list_done(s);
	/* The server ended the watch (timeoutSeconds): watch again from rv. A
	 * partial last line is dropped with the connection. */
	conn_close(s);
	conn_start(s, s->rv[0] ? K8S_WATCH : K8S_LIST);
	return -1;
}

/* Raw bytes after the head: decoded per framing. Same returns as body_bytes,
 * and body_end's when the body ended. */
static int raw_body(k8s_state *s)
{
	char *p = buf_rptr(&s->in);
	size_t n = buf_rlen(&s->in);
	if (s->framing == HTTP_BODY_CHUNKED) {
		size_t len = n;
		long rc = http_chunked_decode(&s->chunked, p, &len);
		if (rc == HTTP_MALFORMED) {
			conn_fail(s, "malformed chunked body", "");
			return -1;
		}
		/* Every input byte was consumed; the payload is at p[0..len). Take it
		 * before buf_reset, which writes its NUL at p[0]. */
		int r = len ? body_bytes(s, p, len) : 0;
		if (r) return r;
		buf_reset(&s->in);
		if (rc >= 0) return body_end(s);
		return 0;
	}
	if (s->framing == HTTP_BODY_LENGTH) {
		size_t take = n < s->body_left ? n : (size_t)s->body_left;
		s->body_left -= take;
		int r = body_bytes(s, p, take);
		if (r) return r;
		buf_reset(&s->in);
		if (s->body_left == 0) return body_end(s);
		return 0;
	}
	int r = body_bytes(s, p, n);
	if (r == 0) buf_reset(&s->in);
	return r;
}

/* A response head is complete in s->in. Returns as raw_body. */
static int head_done(k8s_state *s, int head_len, const http_response_head *h)
{
	s->status = h->status;
	if (h->status != 200) {
		char why[64];
		snprintf(why, sizeof(why), "HTTP %d%s", h->status,
			 h->status == 401 || h->status == 403 ? " (check the token and RBAC)" : "");
		if (h->status == 410 && s->mode == K8S_WATCH) {
			conn_close(s);
			s->rv[0] = '\0';
			conn_start(s, K8S_LIST);
			return -1;
		}
		conn_fail(s, "the API server answered", why);
		return -1;
	}
	if (http_body_framing(h->headers, h->num_headers, 1, h->status, "GET", 3, &s->framing, &s->body_left) < 0) {
		conn_fail(s, "bad body framing", "");
		return -1;
	}
	http_chunked_init(&s->chunked);
	buf_consume(&s->in, (size_t)head_len);
	s->phase = K8S_BODY;
	/* Between watch events the API server may be silent for long: the idle
	 * timeout is the watch's own timeout plus a margin. */
	io_timer_set(s, s->mode == K8S_WATCH ? (uint64_t)s->d->spec.k8s_watch_timeout_s * 1000 + 30000
					     : s->d->spec.timeout_ms * 6);
	if (s->framing == HTTP_BODY_NONE) return body_end(s);
	return buf_rlen(&s->in) ? raw_body(s) : 0;
}

/* Reads what TLS has. Returns as raw_body; 0 when it wants more. */
static int read_some(k8s_state *s)
{
	for (;;) {
		char *p = buf_space(&s->in, K8S_READ_BYTES);
		if (!p) {
			conn_fail(s, "response head over its size cap", "");
			return -1;
		}
		int n = SSL_read(s->ssl, p, K8S_READ_BYTES);
		if (n <= 0) {
			int e = SSL_get_error(s->ssl, n);
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
				want(s, e);
				return 0;
			}
			if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
				/* closed: the end of an until-close body, else a cut */
				if (s->phase == K8S_BODY && s->framing == HTTP_BODY_UNTIL_CLOSE) return body_end(s);
				if (s->phase == K8S_BODY && s->mode == K8S_WATCH) return body_end(s);
				conn_fail(s, "connection closed early", "");
				return -1;
			}
			conn_fail(s, "TLS read", ssl_reason());
			return -1;
		}
		buf_commit(&s->in, (size_t)n);
		if (s->phase == K8S_HEAD) {
			http_header hs[64];
			http_response_head h = {.headers = hs, .num_headers = 64};
			int rc = http_parse_response(buf_rptr(&s->in), buf_rlen(&s->in), &h);
			if (rc == HTTP_INCOMPLETE) {
				if (buf_rlen(&s->in) > K8S_MAX_HEAD_BYTES) {
					conn_fail(s, "response head over its size cap", "");
					return -1;
				}
				continue;
			}
			if (rc < 0) {
				conn_fail(s, "malformed response head", "");
				return -1;
			}
			int r = head_done(s, rc, &h);
			if (r) return r;
		} else {
			int r = raw_body(s);
			if (r) return r;
			/* watch events keep the connection alive */
			if (s->mode == K8S_WATCH)
				io_timer_set(s, (uint64_t)s->d->spec.k8s_watch_timeout_s * 1000 + 30000);
		}
	}
}

static void on_io(ev_loop *loop, int fd, int mask, void *arg)
{
	k8s_state *s = arg;
	switch (s->phase) {
	case K8S_CONNECTING: {
		int e = net_connect_result(fd);
		if (e) {
			conn_fail(s, "connect", strerror(e));
			return;
		}
		if (tls_setup(s) < 0) {
			conn_fail(s, "TLS setup", ssl_reason());
			return;
		}
		s->phase = K8S_HANDSHAKE;
	}
		/* fall through */
	case K8S_HANDSHAKE: {
		ERR_clear_error();
		int rc = SSL_do_handshake(s->ssl);
		if (rc != 1) {
			int e = SSL_get_error(s->ssl, rc);
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
				want(s, e);
				return;
			}
			long v = SSL_get_verify_result(s->ssl);
			conn_fail(s, "TLS handshake",
				  v != X509_V_OK ? X509_verify_cert_error_string(v) : ssl_reason());
			return;
		}
		s->phase = K8S_SENDING;
	}
		/* fall through */
	case K8S_SENDING:
		while (buf_rlen(&s->out)) {
			ERR_clear_error();
			int n = SSL_write(s->ssl, buf_rptr(&s->out), (int)buf_rlen(&s->out));
			if (n <= 0) {
				int e = SSL_get_error(s->ssl, n);
				if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
					want(s, e);
					return;
				}
				conn_fail(s, "TLS write", ssl_reason());
				return;
			}
			buf_consume(&s->out, (size_t)n);
		}
		if (s->out.data) explicit_bzero(s->out.data, s->out.cap); /* the token */
		s->phase = K8S_HEAD;
		ev_mod(loop, fd, EV_READ);
		io_timer_set(s, s->d->spec.timeout_ms);
		/* fall through */
	case K8S_HEAD:
	case K8S_BODY:
		ERR_clear_error();
		read_some(s);
		return;
	default:
		return;
	}
}

/* ------------------------------------------------------------ start, stop */

int discovery_k8s_start(discovery *d, char *err, size_t err_len)
{
	discovery_spec *sp = &d->spec;
	k8s_state *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	s->d = d;
	s->fd = -1;
	/* The service account's folder: the standard one, or $INFERGATE_K8S_SA_DIR
	 * (tests, and running outside a pod with a token of one). */
	const char *sa = getenv("INFERGATE_K8S_SA_DIR");
	if (!sa || !sa[0]) sa = K8S_SA_DIR;
	if (sp->k8s_token_path[0])
		str_copy(s->token_path, sp->k8s_token_path, sizeof(s->token_path));
	else
		snprintf(s->token_path, sizeof(s->token_path), "%.200s/token", sa);
	if (sp->k8s_ca_path[0])
		str_copy(s->ca_path, sp->k8s_ca_path, sizeof(s->ca_path));
	else
		snprintf(s->ca_path, sizeof(s->ca_path), "%.200s/ca.crt", sa);
	if (sp->k8s_namespace[0]) {
		str_copy(s->ns, sp->k8s_namespace, sizeof(s->ns));
	} else {
		char dir[256], path[300];
		str_copy(dir, s->token_path, sizeof(dir));
		char *slash = strrchr(dir, '/');
		if (slash) *slash = '\0';
		snprintf(path, sizeof(path), "%s/namespace", slash ? dir : ".");
		if (read_small_file(path, s->ns, sizeof(s->ns)) < 0 || !s->ns[0]) str_copy(s->ns, "default", sizeof(s->ns));
	}
	if (sp->k8s_api[0]) {
		str_copy(s->host, sp->k8s_api, sizeof(s->host));
	} else {
		const char *h = getenv("KUBERNETES_SERVICE_HOST"), *p = getenv("KUBERNETES_SERVICE_PORT");
		if (!h || !h[0]) {
			snprintf(err, err_len, "discovery of service %s: no API address (KUBERNETES_SERVICE_HOST is not set)",
				 sp->k8s_service);
			free(s);
			return -1;
		}
		snprintf(s->host, sizeof(s->host), strchr(h, ':') ? "[%s]:%s" : "%s:%s", h, p && p[0] ? p : "443");
	}
	char why[128] = "";
	if (net_addr_parse_numeric(s->host, &s->api) < 0 && net_addr_parse(s->host, &s->api, why, sizeof(why)) < 0) {
		snprintf(err, err_len, "discovery of service %s: API address %s: %s", sp->k8s_service, s->host,
			 why[0] ? why : "not host:port");
		free(s);
		return -1;
	}
	if (sp->k8s_server_name[0]) {
		str_copy(s->verify_name, sp->k8s_server_name, sizeof(s->verify_name));
	} else { /* the host part of host:port, without brackets */
		const char *h = s->host;
		size_t n = strlen(h);
		const char *colon = strrchr(h, ':');
		if (colon) n = (size_t)(colon - h);
		if (h[0] == '[' && n >= 2 && h[n - 1] == ']') h++, n -= 2;
		if (n >= sizeof(s->verify_name)) n = sizeof(s->verify_name) - 1;
		memcpy(s->verify_name, h, n);
		s->verify_name[n] = '\0';
	}
	if (!sp->name[0]) snprintf(sp->name, sizeof(sp->name), "kubernetes:%s/%s", s->ns, sp->k8s_service);
	buf_init(&s->out, K8S_MAX_TOKEN_BYTES + 4096);
	buf_init(&s->in, K8S_MAX_HEAD_BYTES + K8S_READ_BYTES * 2);
	buf_init(&s->body, 0);
	d->impl = s;
	conn_start(s, K8S_LIST);
	return 0;
}

void discovery_k8s_stop(discovery *d)
{
	k8s_state *s = d->impl;
	if (!s) return;
	conn_close(s);
	ev_timer_del(d->loop, s->retry_timer);
	slices_clear(s);
	buf_free(&s->out);
	buf_free(&s->in);
	buf_free(&s->body);
	free(s);
	d->impl = NULL;
}
