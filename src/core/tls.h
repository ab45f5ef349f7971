/*
 * tls.h — TLS on non-blocking sockets (OpenSSL), for httpd and http_client.
 *
 * A tls_ctx is a configuration (certificate and key, client CAs, trusted CAs,
 * ALPN list): one per server listener or per upstream backend. A tls_conn is
 * one connection over a socket the caller owns. The calls never block: when
 * OpenSSL needs the socket readable or writable first they return "again"
 * (-1 with errno EAGAIN for reads and writes, 0 for the handshake) and
 * tls_want says which of EV_READ / EV_WRITE the caller must wait for. So the
 * caller keeps its own event loop interest and its own buffers (zero copy on
 * its side: OpenSSL reads and writes the socket directly).
 *
 * Lifetimes: a tls_conn holds a reference on its context, so a context
 * replaced at reload (tls_ctx_free on the old one, a new one for new
 * connections) stays alive until its last connection is freed.
 *
 * Defaults: TLS 1.2 and 1.3 only; for TLS 1.2 forward-secret AEAD suites only
 * (ECDHE with AES-GCM or ChaCha20-Poly1305); no renegotiation, no compression;
 * servers keep a session cache and issue session tickets (resumption);
 * clients verify the peer's chain and name unless told not to.
 *
 * Not here: the event loop (the caller's), OCSP stapling, certificate
 * selection by SNI (one certificate per listener).
 */
#ifndef CORE_TLS_H
#define CORE_TLS_H

#include <stddef.h>
#include <sys/types.h>

typedef struct tls_ctx tls_ctx;
typedef struct tls_conn tls_conn;

typedef struct tls_server_opts {
	const char *cert_file;      /* PEM chain, leaf first (required) */
	const char *key_file;       /* PEM private key (required) */
	const char *client_ca_file; /* PEM CAs: clients must show a certificate they signed (mutual TLS); NULL = none asked */
	const char *ciphers;        /* TLS 1.2 cipher list; NULL = the defaults above */
	int alpn_h2;                /* offer "h2" before "http/1.1" in ALPN */
} tls_server_opts;

typedef struct tls_client_opts {
	const char *ca_file;   /* PEM CAs to trust; NULL = the system store */
	int insecure;          /* 1: do not verify the peer (tests against self-signed only) */
	const char *cert_file; /* client certificate for mutual TLS, or NULL */
	const char *key_file;
} tls_client_opts;

/* A server context. Checks that the files load and that the key matches the
 * certificate. Returns NULL with a reason naming the file in err. */
tls_ctx *tls_server_new(const tls_server_opts *o, char *err, size_t err_len);
/* A client context. Returns NULL with a reason in err. */
tls_ctx *tls_client_new(const tls_client_opts *o, char *err, size_t err_len);
/* Drops the caller's reference; connections made from it keep theirs. NULL is fine. */
void tls_ctx_free(tls_ctx *ctx);
/* Another reference on ctx (each dropped with tls_ctx_free). Returns ctx. */
tls_ctx *tls_ctx_ref(tls_ctx *ctx);

/* A connection on fd (non-blocking, connected or accepted). server_name: for a
 * client, the name sent as SNI (not when it is an IP literal) and checked
 * against the peer's certificate; NULL for a server. Returns NULL on
 * allocation failure. */
tls_conn *tls_conn_new(tls_ctx *ctx, int fd, const char *server_name);
/* Frees the connection (not the socket). NULL is fine. */
void tls_conn_free(tls_conn *t);

/* Advances the handshake: 1 done, 0 again (wait for tls_want), -1 failed
 * (tls_error says why). */
int tls_handshake(tls_conn *t);
/* Like read(2): bytes, 0 at the peer's close (close_notify or TCP EOF), -1
 * with errno (EAGAIN: wait for tls_want; EPROTO: a TLS error). */
ssize_t tls_read(tls_conn *t, void *dst, size_t len);
/* Like send(2): bytes taken (maybe fewer than len), -1 with errno (EAGAIN:
 * wait for tls_want, then call again with at least the same bytes: the data
 * may move, its start may not). */
ssize_t tls_write(tls_conn *t, const void *src, size_t len);
/* EV_READ or EV_WRITE: what the last "again" waits for (0 when none). */
int tls_want(const tls_conn *t);
/* Decrypted bytes held inside the connection, readable with no socket event. */
size_t tls_pending(const tls_conn *t);
/* Sends close_notify if the socket takes it now (never waits). */
void tls_close_notify(tls_conn *t);
/* The protocol ALPN chose ("h2", "http/1.1"), or "" when none. */
const char *tls_alpn(const tls_conn *t);
/* 1 when the handshake resumed a session. */
int tls_resumed(const tls_conn *t);
/* "TLSv1.3" ... */
const char *tls_version(const tls_conn *t);
/* Why the last call failed (verification result, OpenSSL's reason). */
const char *tls_error(const tls_conn *t);

#endif
