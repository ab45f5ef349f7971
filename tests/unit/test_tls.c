/* test_tls.c — core/tls over a non-blocking socketpair, with a certificate made
 * here (OpenSSL API, EC P-256, self-signed for "localhost"): contexts refuse a
 * missing file and a key that does not match, naming them; a handshake steps
 * through "again" with the direction it waits for, then data both ways; bytes
 * held decrypted show in tls_pending; ALPN picks http/1.1 for a client that
 * offers only it; verification can be turned off; a wrong name
 * or an untrusted certificate fails verification with the reason. */
#include "core/ev.h"
#include "core/tls.h"
#include "t.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static char dir[64], cert[128], key[128], key2[128], missing[128];

static EVP_PKEY *write_key(const char *path)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	FILE *f = fopen(path, "w");
	if (!k || !f || !PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL)) abort();
	fclose(f);
	return k;
}

static void make_files(void)
{
	snprintf(dir, sizeof(dir), "/tmp/test_tls.XXXXXX");
	if (!mkdtemp(dir)) abort();
	snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
	snprintf(key, sizeof(key), "%s/key.pem", dir);
	snprintf(key2, sizeof(key2), "%s/key2.pem", dir);
	snprintf(missing, sizeof(missing), "%s/none.pem", dir);
	EVP_PKEY *k = write_key(key);
	EVP_PKEY_free(write_key(key2));
	X509 *x = X509_new();
	ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, k);
	X509_NAME *n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1, 0);
	X509_set_issuer_name(x, n);
	X509V3_CTX v3;
	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "DNS:localhost");
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	if (!X509_sign(x, k, EVP_sha256())) abort();
	FILE *f = fopen(cert, "w");
	if (!f || !PEM_write_X509(f, x)) abort();
	fclose(f);
	X509_free(x);
	EVP_PKEY_free(k);
}

static void remove_files(void)
{
	unlink(cert);
	unlink(key);
	unlink(key2);
	rmdir(dir);
}

static void test_server_errors(void)
{
	char err[512];
	tls_server_opts o = {.cert_file = missing, .key_file = key};
	T_CHECK(tls_server_new(&o, err, sizeof(err)) == NULL);
	T_CHECK(strstr(err, "none.pem") != NULL);
	o.cert_file = cert;
	o.key_file = key2;
	T_CHECK(tls_server_new(&o, err, sizeof(err)) == NULL);
	T_CHECK(strstr(err, "does not match") != NULL);
	o.key_file = NULL;
	T_CHECK(tls_server_new(&o, err, sizeof(err)) == NULL);
	tls_client_opts c = {.ca_file = missing};
	T_CHECK(tls_client_new(&c, err, sizeof(err)) == NULL);
	T_CHECK(strstr(err, "none.pem") != NULL);
}

/* Steps both handshakes until both are done or one fails (bounded). Returns
 * 1 when both finished, -1 when one failed. Every "again" names a direction. */
static int handshake_pair(tls_conn *a, tls_conn *b, int *agains)
{
	int da = 0, db = 0;
	for (int i = 0; i < 50 && !(da && db); i++) {
		if (!da) {
			int r = tls_handshake(a);
			if (r < 0) return -1;
			if (r == 0) {
				(*agains)++;
				T_CHECK(tls_want(a) == EV_READ || tls_want(a) == EV_WRITE);
			}
			da = r == 1;
		}
		if (!db) {
			int r = tls_handshake(b);
			if (r < 0) return -1;
			if (r == 0) {
				(*agains)++;
				T_CHECK(tls_want(b) == EV_READ || tls_want(b) == EV_WRITE);
			}
			db = r == 1;
		}
	}
	return da && db ? 1 : -1;
}

static void pair(int sv[2])
{
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0) abort();
}

static void test_handshake_and_data(void)
{
	char err[512];
	tls_server_opts so = {.cert_file = cert, .key_file = key, .alpn_h2 = 1};
	tls_ctx *sc = tls_server_new(&so, err, sizeof(err));
	tls_client_opts co = {.ca_file = cert};
	tls_ctx *cc = tls_client_new(&co, err, sizeof(err));
	T_CHECK(sc && cc);
	if (!sc || !cc) return;
	int sv[2];
	pair(sv);
	tls_conn *s = tls_conn_new(sc, sv[0], NULL), *c = tls_conn_new(cc, sv[1], "localhost");
	tls_ctx_free(sc); /* the connections keep the contexts alive */
	tls_ctx_free(cc);
	int agains = 0;
	T_EQ_INT(handshake_pair(c, s, &agains), 1);
	T_CHECK(agains > 0);
	T_EQ_STR(tls_alpn(s), "http/1.1"); /* the client offered only http/1.1 */
	T_CHECK(!strncmp(tls_version(s), "TLSv1.", 6));
	char buf[64];
	errno = 0;
	T_EQ_INT((int)tls_read(s, buf, sizeof(buf)), -1);
	T_EQ_INT(errno, EAGAIN);
	T_EQ_INT(tls_want(s), EV_READ);
	T_EQ_INT((int)tls_write(c, "hello world", 11), 11);
	T_EQ_INT((int)tls_read(s, buf, 5), 5);
	T_EQ_MEM(buf, "hello", 5);
	T_EQ_INT((int)tls_pending(s), 6); /* the rest of the record, decrypted, with no socket event */
	T_EQ_INT((int)tls_read(s, buf, sizeof(buf)), 6);
	T_EQ_MEM(buf, " world", 6);
	T_EQ_INT((int)tls_write(s, "ok", 2), 2);
	ssize_t n = tls_read(c, buf, sizeof(buf));
	while (n < 0 && errno == EAGAIN && tls_pending(c) == 0) n = tls_read(c, buf, sizeof(buf)); /* tickets first */
	T_EQ_INT((int)n, 2);
	tls_close_notify(c);
	T_EQ_INT((int)tls_read(s, buf, sizeof(buf)), 0); /* close_notify reads as EOF */
	tls_conn_free(s);
	tls_conn_free(c);
	close(sv[0]);
	close(sv[1]);
}

static void test_insecure_ip_name(void)
{
	char err[512];
	tls_server_opts so = {.cert_file = cert, .key_file = key, .alpn_h2 = 1};
	tls_ctx *sc = tls_server_new(&so, err, sizeof(err));
	tls_client_opts co = {.insecure = 1};
	tls_ctx *cc = tls_client_new(&co, err, sizeof(err));
	T_CHECK(sc && cc);
	if (!sc || !cc) return;
	int sv[2];
	pair(sv);
	tls_conn *s = tls_conn_new(sc, sv[0], NULL), *c = tls_conn_new(cc, sv[1], "127.0.0.1");
	/* insecure: no verification, so an IP name (no SNI) with a certificate
	 * for "localhost" passes. */
	int agains = 0;
	T_EQ_INT(handshake_pair(c, s, &agains), 1);
	T_EQ_STR(tls_alpn(s), "http/1.1");
	T_EQ_INT(tls_resumed(s), 0);
	tls_conn_free(s);
	tls_conn_free(c);
	tls_ctx_free(sc);
	tls_ctx_free(cc);
	close(sv[0]);
	close(sv[1]);
}

static void verify_fails(const tls_client_opts *co, const char *name, const char *why)
{
	char err[512];
	tls_server_opts so = {.cert_file = cert, .key_file = key};
	tls_ctx *sc = tls_server_new(&so, err, sizeof(err));
	tls_ctx *cc = tls_client_new(co, err, sizeof(err));
	T_CHECK(sc && cc);
	if (!sc || !cc) return;
	int sv[2];
	pair(sv);
	tls_conn *s = tls_conn_new(sc, sv[0], NULL), *c = tls_conn_new(cc, sv[1], name);
	int agains = 0;
	T_EQ_INT(handshake_pair(c, s, &agains), -1);
	T_CHECK(strstr(tls_error(c), "certificate verify failed") != NULL);
	T_CHECK(strstr(tls_error(c), why) != NULL);
	tls_conn_free(s);
	tls_conn_free(c);
	tls_ctx_free(sc);
	tls_ctx_free(cc);
	close(sv[0]);
	close(sv[1]);
}

static void test_verify_failures(void)
{
	tls_client_opts trusted = {.ca_file = cert};
	verify_fails(&trusted, "other.example", "mismatch");
	tls_client_opts system = {0}; /* the system store does not know the test certificate */
	verify_fails(&system, "localhost", "self-signed");
}

int main(void)
{
	make_files();
	T_RUN(test_server_errors);
	T_RUN(test_handshake_and_data);
	T_RUN(test_insecure_ip_name);
	T_RUN(test_verify_failures);
	remove_files();
	return T_END();
}
