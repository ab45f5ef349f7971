/*
 * tls.c — the OpenSSL glue of tls.h.
 *
 * A tls_ctx is an SSL_CTX (OpenSSL counts its references: every SSL made
 * from it holds one, so freeing ours at reload is safe). A tls_conn is an SSL
 * on the caller's socket plus what the last "again" waited for and a reason
 * string for the last failure. OpenSSL's per-thread error queue is emptied
 * before each call, so a reason always belongs to the call that failed.
 */
#include "core/tls.h"
#include "core/ev.h"
#include "core/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TLS12_CIPHERS "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
		      "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
		      "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

struct tls_ctx {
	SSL_CTX *ssl_ctx;
	int client;
	int refs;
};

struct tls_conn {
	SSL *ssl;
	int want; /* EV_READ / EV_WRITE */
	int client;
	char err[200];
};

/* The first queued OpenSSL error as text (the queue is then emptied). */
static void ossl_reason(char *dst, size_t n, const char *what)
{
	unsigned long e = ERR_get_error();
	char r[160] = "unknown error";
	if (e) ERR_error_string_n(e, r, sizeof(r));
	snprintf(dst, n, "%s: %s", what, r);
	ERR_clear_error();
}

static tls_ctx *ctx_base(int client, char *err, size_t err_len)
{
	ERR_clear_error();
	tls_ctx *t = calloc(1, sizeof(*t));
	if (!t) {
		snprintf(err, err_len, "out of memory");
		return NULL;
	}
	t->client = client;
	t->refs = 1;
	t->ssl_ctx = SSL_CTX_new(client ? TLS_client_method() : TLS_server_method());
	if (!t->ssl_ctx) {
		ossl_reason(err, err_len, "SSL_CTX_new");
		free(t);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(t->ssl_ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(t->ssl_ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
						SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* Partial writes, and a buffer that may move between a write that said
	 * "again" and its retry (the caller's output buffer grows by realloc). */
	SSL_CTX_set_mode(t->ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
					     SSL_MODE_RELEASE_BUFFERS);
	if (!SSL_CTX_set_cipher_list(t->ssl_ctx, TLS12_CIPHERS)) {
		ossl_reason(err, err_len, "cipher list");
		SSL_CTX_free(t->ssl_ctx);
		free(t);
		return NULL;
	}
	return t;
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		       const unsigned char *in, unsigned int inlen, void *arg)
{
	/* arg is the flag itself, not the tls_ctx: a context replaced at reload
	 * is freed while handshakes it started are still in progress. */
	int h2 = arg != NULL;
	static const unsigned char both[] = "\x02h2\x08http/1.1";
	static const unsigned char h1[] = "\x08http/1.1";
	const unsigned char *ours = h2 ? both : h1;
	unsigned ours_len = h2 ? sizeof(both) - 1 : sizeof(h1) - 1;
	unsigned char *sel = NULL;
	/* Our order wins: h2 when the client offers it. */
	if (SSL_select_next_proto(&sel, outlen, ours, ours_len, in, inlen) != OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK; /* no common protocol: go on without ALPN (HTTP/1.1) */
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

tls_ctx *tls_server_new(const tls_server_opts *o, char *err, size_t err_len)
{
	if (!o->cert_file || !o->key_file) {
		snprintf(err, err_len, "a TLS listener needs both a certificate and a key file");
		return NULL;
	}
	tls_ctx *t = ctx_base(0, err, err_len);
	if (!t) return NULL;
	SSL_CTX *sc = t->ssl_ctx;
	char what[512];
	if (o->ciphers && !SSL_CTX_set_cipher_list(sc, o->ciphers)) {
		ossl_reason(err, err_len, "ciphers");
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(sc, o->cert_file) != 1) {
		snprintf(what, sizeof(what), "certificate %s", o->cert_file);
		ossl_reason(err, err_len, what);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(sc, o->key_file, SSL_FILETYPE_PEM) != 1) {
		if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
			ERR_clear_error();
			snprintf(err, err_len, "private key %s does not match certificate %s", o->key_file, o->cert_file);
			goto fail;
		}
		snprintf(what, sizeof(what), "private key %s", o->key_file);
		ossl_reason(err, err_len, what);
		goto fail;
	}
	if (SSL_CTX_check_private_key(sc) != 1) {
		ERR_clear_error();
		snprintf(err, err_len, "private key %s does not match certificate %s", o->key_file, o->cert_file);
		goto fail;
	}
	if (o->client_ca_file) {
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(o->client_ca_file);
		if (!names || SSL_CTX_load_verify_locations(sc, o->client_ca_file, NULL) != 1) {
			if (names) sk_X509_NAME_pop_free(names, X509_NAME_free);
			snprintf(what, sizeof(what), "client CA file %s", o->client_ca_file);
			ossl_reason(err, err_len, what);
			goto fail;
		}
		SSL_CTX_set_client_CA_list(sc, names);
		SSL_CTX_set_verify(sc, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	}
	/* Resumption: a server-side session cache (TLS 1.2 session ids) and
	 * tickets (both versions; OpenSSL's default keys, new per context). */
	static const unsigned char sid_ctx[] = "infergate";
	SSL_CTX_set_session_id_context(sc, sid_ctx, sizeof(sid_ctx) - 1);
	SSL_CTX_set_session_cache_mode(sc, SSL_SESS_CACHE_SERVER);
	SSL_CTX_sess_set_cache_size(sc, 20000);
	SSL_CTX_set_alpn_select_cb(sc, alpn_select, o->alpn_h2 ? (void *)1 : NULL);
	return t;
fail:
	SSL_CTX_free(sc);
	free(t);
	return NULL;
}

tls_ctx *tls_client_new(const tls_client_opts *o, char *err, size_t err_len)
{
	tls_ctx *t = ctx_base(1, err, err_len);
	if (!t) return NULL;
	SSL_CTX *sc = t->ssl_ctx;
	char what[512];
	if (o->ca_file) {
		if (SSL_CTX_load_verify_locations(sc, o->ca_file, NULL) != 1) {
			snprintf(what, sizeof(what), "CA file %s", o->ca_file);
			ossl_reason(err, err_len, what);
			goto fail;
		}
	} else if (SSL_CTX_set_default_verify_paths(sc) != 1) {
		ossl_reason(err, err_len, "system CA store");
		goto fail;
	}
	if (o->cert_file && o->key_file) {
		if (SSL_CTX_use_certificate_chain_file(sc, o->cert_file) != 1 ||
		    SSL_CTX_use_PrivateKey_file(sc, o->key_file, SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_check_private_key(sc) != 1) {
			snprintf(what, sizeof(what), "client certificate %s / key %s", o->cert_file, o->key_file);
			ossl_reason(err, err_len, what);
			goto fail;
		}
	}
	SSL_CTX_set_verify(sc, o->insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
	static const unsigned char h1[] = "\x08http/1.1";
	SSL_CTX_set_alpn_protos(sc, h1, sizeof(h1) - 1);
	return t;
fail:
	SSL_CTX_free(sc);
	free(t);
	return NULL;
}

tls_ctx *tls_ctx_ref(tls_ctx *t)
{
	t->refs++;
	return t;
}

void tls_ctx_free(tls_ctx *t)
{
	if (!t || --t->refs > 0) return;
	SSL_CTX_free(t->ssl_ctx);
	free(t);
}

static int is_ip_literal(const char *s)
{
	unsigned char b[16];
	return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

tls_conn *tls_conn_new(tls_ctx *ctx, int fd, const char *server_name)
{
	tls_conn *t = calloc(1, sizeof(*t));
	if (!t) return NULL;
	ERR_clear_error();
	t->ssl = SSL_new(ctx->ssl_ctx);
	if (!t->ssl || SSL_set_fd(t->ssl, fd) != 1) goto fail;
	t->client = ctx->client;
	if (ctx->client) {
		if (server_name && *server_name) {
			if (!is_ip_literal(server_name)) SSL_set_tlsext_host_name(t->ssl, server_name);
			/* The name (or address) the certificate must carry. */
			if (is_ip_literal(server_name)) {
				X509_VERIFY_PARAM *vp = SSL_get0_param(t->ssl);
				if (X509_VERIFY_PARAM_set1_ip_asc(vp, server_name) != 1) goto fail;
			} else if (SSL_set1_host(t->ssl, server_name) != 1) {
				goto fail;
			}
		}
		SSL_set_connect_state(t->ssl);
	} else {
		SSL_set_accept_state(t->ssl);
	}
	return t;
fail:
	ERR_clear_error();
	if (t->ssl) SSL_free(t->ssl);
	free(t);
	return NULL;
}

void tls_conn_free(tls_conn *t)
{
	if (!t) return;
	SSL_free(t->ssl);
	free(t);
}

/* Maps an OpenSSL result: 1 again (want set), 0 clean close, -1 failure. */
static int map_error(tls_conn *t, int rc, const char *what)
{
	int e = SSL_get_error(t->ssl, rc);
	switch (e) {
	case SSL_ERROR_WANT_READ:
		t->want = EV_READ;
		return 1;
	case SSL_ERROR_WANT_WRITE:
		t->want = EV_WRITE;
		return 1;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		if (ERR_peek_error()) break;
		snprintf(t->err, sizeof(t->err), "%s: %s", what, errno ? strerror(errno) : "connection closed");
		return -1;
	default:
		break;
	}
	long v = SSL_get_verify_result(t->ssl);
	if (v != X509_V_OK) {
		snprintf(t->err, sizeof(t->err), "%s: certificate verify failed: %s", what,
			 X509_verify_cert_error_string(v));
		ERR_clear_error();
		return -1;
	}
	ossl_reason(t->err, sizeof(t->err), what);
	return -1;
}

int tls_handshake(tls_conn *t)
{
	ERR_clear_error();
	t->want = 0;
	int rc = SSL_do_handshake(t->ssl);
	if (rc == 1) return 1;
	int m = map_error(t, rc, "handshake");
	if (m == 1) return 0;
	if (m == 0) snprintf(t->err, sizeof(t->err), "handshake: closed by the peer");
	return -1;
}

ssize_t tls_read(tls_conn *t, void *dst, size_t len)
{
	ERR_clear_error();
	t->want = 0;
	size_t got = 0;
	int rc = SSL_read_ex(t->ssl, dst, len, &got);
	if (rc == 1) return (ssize_t)got;
	int m = map_error(t, rc, "read");
	if (m == 1) {
		errno = EAGAIN;
		return -1;
	}
	if (m == 0) return 0;
	/* A peer that closes without close_notify: an EOF, as for plain TCP
	 * (HTTP frames its own messages). */
	if (SSL_get_error(t->ssl, rc) == SSL_ERROR_SYSCALL && !errno) return 0;
	errno = EPROTO;
	return -1;
}

ssize_t tls_write(tls_conn *t, const void *src, size_t len)
{
	if (!len) return 0;
	ERR_clear_error();
	t->want = 0;
	size_t put = 0;
	int rc = SSL_write_ex(t->ssl, src, len, &put);
	if (rc == 1) return (ssize_t)put;
	int m = map_error(t, rc, "write");
	if (m == 1) {
		errno = EAGAIN;
		return -1;
	}
	errno = m == 0 ? EPIPE : (errno ? errno : EPIPE);
	return -1;
}

int tls_want(const tls_conn *t) { return t->want; }
size_t tls_pending(const tls_conn *t) { return (size_t)SSL_pending(t->ssl); }

void tls_close_notify(tls_conn *t)
{
	ERR_clear_error();
	if (SSL_is_init_finished(t->ssl)) SSL_shutdown(t->ssl);
	ERR_clear_error();
}

const char *tls_alpn(const tls_conn *t)
{
	const unsigned char *p = NULL;
	unsigned n = 0;
	SSL_get0_alpn_selected(t->ssl, &p, &n);
	if (!p || !n) return "";
	if (n == 2 && !memcmp(p, "h2", 2)) return "h2";
	if (n == 8 && !memcmp(p, "http/1.1", 8)) return "http/1.1";
	return "";
}

int tls_resumed(const tls_conn *t) { return SSL_session_reused(t->ssl); }
const char *tls_version(const tls_conn *t) { return SSL_get_version(t->ssl); }
const char *tls_error(const tls_conn *t) { return t->err[0] ? t->err : "no error"; }
