/*
 * test_discovery.c — the DNS codec (queries, answers with compression, CNAME
 * chains, every truncation of a message), the address-set helpers (normalize,
 * diff, resolv.conf), and the DNS discovery backend on a real event loop
 * against a small scripted DNS server on loopback UDP: sets that change, ids
 * that must match, timeouts, SERVFAIL and truncation that keep the last set,
 * NXDOMAIN that empties it, SRV targets with and without additional records,
 * and freeing from inside the callback.
 *
 * The gateway's files are compiled into this test (they are not a library).
 */
#include "t.h"
#include "gateway/dns.c"
#include "gateway/discovery.c"
#include "gateway/discovery_dns.c"
#include "gateway/discovery_k8s.c"
#include "core/ev.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <unistd.h>

/* ------------------------------------------------------------ message builder */

typedef struct mb {
	uint8_t b[2048];
	size_t n;
} mb;

static void mb_u16(mb *m, unsigned v)
{
	m->b[m->n++] = (uint8_t)(v >> 8);
	m->b[m->n++] = (uint8_t)v;
}
static void mb_u32(mb *m, uint32_t v)
{
	mb_u16(m, v >> 16);
	mb_u16(m, v & 0xFFFF);
}
static void mb_name(mb *m, const char *name)
{
	int n = name_encode(m->b + m->n, sizeof(m->b) - m->n, name);
	T_CHECK(n > 0);
	m->n += (size_t)n;
}
static void mb_header(mb *m, unsigned id, unsigned flags, unsigned qd, unsigned an, unsigned ns, unsigned ar)
{
	m->n = 0;
	mb_u16(m, id);
	mb_u16(m, flags);
	mb_u16(m, qd);
	mb_u16(m, an);
	mb_u16(m, ns);
	mb_u16(m, ar);
}
/* A record whose owner is a pointer to offset 12 (the question's name). */
static void mb_rr_a_ptr(mb *m, const char *ip)
{
	mb_u16(m, 0xC00C);
	mb_u16(m, DNS_TYPE_A);
	mb_u16(m, DNS_CLASS_IN);
	mb_u32(m, 30);
	mb_u16(m, 4);
	inet_pton(AF_INET, ip, m->b + m->n);
	m->n += 4;
}

static void test_query_build(void)
{
	uint8_t q[512];
	int n = dns_query_build(q, sizeof(q), 0xBEEF, "vllm.default.svc.cluster.local.", DNS_TYPE_AAAA);
	T_EQ_INT(n, 12 + 32 + 4);
	T_EQ_INT(q[0], 0xBE);
	T_EQ_INT(q[1], 0xEF);
	T_EQ_INT(q[2], 0x01); /* RD */
	T_EQ_INT(q[5], 1);
	T_EQ_MEM(q + 12, "\x04vllm\x07"
			 "default\x03svc\x07"
			 "cluster\x05local\x00",
		 32);
	T_EQ_INT(q[12 + 32 + 1], DNS_TYPE_AAAA);
	T_EQ_INT(dns_query_build(q, sizeof(q), 1, "_http._tcp.x.y", DNS_TYPE_SRV) > 0, 1);
	T_EQ_INT(dns_query_build(q, sizeof(q), 1, "", DNS_TYPE_A), -1);
	T_EQ_INT(dns_query_build(q, sizeof(q), 1, "a..b", DNS_TYPE_A), -1);
	T_EQ_INT(dns_query_build(q, sizeof(q), 1, "a b", DNS_TYPE_A), -1);
	T_EQ_INT(dns_query_build(q, sizeof(q), 1, ".", DNS_TYPE_A), -1);
	char lbl[80];
	memset(lbl, 'a', 64);
	lbl[64] = 0;
	T_EQ_INT(dns_query_build(q, sizeof(q), 1, lbl, DNS_TYPE_A), -1); /* label of 64 */
	lbl[63] = 0;
	T_EQ_INT(dns_query_build(q, sizeof(q), 1, lbl, DNS_TYPE_A) > 0, 1);
	T_EQ_INT(dns_query_build(q, 20, 1, "abcdefghijkl.com", DNS_TYPE_A), -1); /* no room */
	T_CHECK(dns_name_eq("A.b.C", "a.B.c."));
	T_CHECK(!dns_name_eq("a.b", "a.bc"));
}

static void test_response_parse(void)
{
	/* Question "svc.ns.local" A; answers: CNAME svc.ns.local -> real.ns.local
	 * (target compressed as "real" + pointer to "ns.local"), two A of real,
	 * one A of an unrelated name, an SRV in the additional section. */
	mb m;
	mb_header(&m, 7, 0x8180, 1, 4, 0, 1);
	mb_name(&m, "svc.ns.local");
	mb_u16(&m, DNS_TYPE_A);
	mb_u16(&m, DNS_CLASS_IN);
	/* CNAME */
	mb_u16(&m, 0xC00C);
	mb_u16(&m, DNS_TYPE_CNAME);
	mb_u16(&m, 1);
	mb_u32(&m, 5);
	size_t rdlen_at = m.n;
	mb_u16(&m, 0);
	size_t real_at = m.n;
	m.b[m.n++] = 4;
	memcpy(m.b + m.n, "real", 4);
	m.n += 4;
	mb_u16(&m, 0xC000 | 16); /* "ns.local" at 12+4 */
	m.b[rdlen_at + 1] = (uint8_t)(m.n - rdlen_at - 2);
	for (int i = 0; i < 2; i++) {
		mb_u16(&m, 0xC000 | (unsigned)real_at);
		mb_u16(&m, DNS_TYPE_A);
		mb_u16(&m, 1);
		mb_u32(&m, 5);
		mb_u16(&m, 4);
		uint8_t ip[4] = {10, 0, 0, (uint8_t)(1 + i)};
		memcpy(m.b + m.n, ip, 4);
		m.n += 4;
	}
	mb_name(&m, "other.local");
	mb_u16(&m, DNS_TYPE_A);
	mb_u16(&m, 1);
	mb_u32(&m, 5);
	mb_u16(&m, 4);
	memcpy(m.b + m.n, "\x0b\x0b\x0b\x0b", 4);
	m.n += 4;
	/* additional: SRV 0 5 8000 real.ns.local */
	mb_u16(&m, 0xC00C);
	mb_u16(&m, DNS_TYPE_SRV);
	mb_u16(&m, 1);
	mb_u32(&m, 5);
	mb_u16(&m, 8);
	mb_u16(&m, 0);
	mb_u16(&m, 5);
	mb_u16(&m, 8000);
	mb_u16(&m, 0xC000 | (unsigned)real_at);

	dns_rr rrs[8];
	dns_response r = {.rrs = rrs, .max_rrs = 8};
	T_EQ_INT(dns_response_parse(m.b, m.n, &r), 0);
	T_EQ_INT(r.id, 7);
	T_EQ_STR(r.qname, "svc.ns.local");
	T_EQ_INT(r.qtype, DNS_TYPE_A);
	T_EQ_INT(r.n_rrs, 5);
	T_EQ_STR(rrs[0].target, "real.ns.local");
	T_EQ_STR(rrs[1].name, "real.ns.local");
	T_EQ_INT(rrs[2].u.a[3], 2);
	T_EQ_INT(rrs[4].section, DNS_SECTION_ADDITIONAL);
	T_EQ_INT(rrs[4].u.srv.port, 8000);
	T_EQ_STR(rrs[4].target, "real.ns.local");
	T_CHECK(name_in_chain(&r, "svc.ns.local", "real.ns.local"));
	T_CHECK(!name_in_chain(&r, "svc.ns.local", "other.local"));

	/* Capacity: records past max_rrs are counted, not written. */
	dns_response small = {.rrs = rrs, .max_rrs = 2};
	T_EQ_INT(dns_response_parse(m.b, m.n, &small), 0);
	T_EQ_INT(small.n_rrs, 2);
	T_EQ_INT(small.dropped_rrs, 3);

	/* Every strict prefix is malformed, never a crash (ASan watches). */
	for (size_t len = 0; len < m.n; len++) {
		uint8_t *copy = malloc(len ? len : 1);
		memcpy(copy, m.b, len);
		dns_response p = {.rrs = rrs, .max_rrs = 8};
		T_EQ_INT(dns_response_parse(copy, len, &p), -1);
		free(copy);
	}

	/* A query (QR clear) is not a response; two questions neither. */
	uint8_t q[128];
	int qn = dns_query_build(q, sizeof(q), 9, "a.b", DNS_TYPE_A);
	T_EQ_INT(dns_response_parse(q, (size_t)qn, &r), -1);
	q[2] |= 0x80;
	q[5] = 2;
	T_EQ_INT(dns_response_parse(q, (size_t)qn, &r), -1);

	/* A pointer to itself, and a forward pointer, are refused. */
	mb_header(&m, 1, 0x8180, 1, 1, 0, 0);
	mb_name(&m, "a.b");
	mb_u16(&m, 1);
	mb_u16(&m, 1);
	size_t self = m.n;
	mb_u16(&m, 0xC000 | (unsigned)self);
	mb_u16(&m, 1);
	mb_u16(&m, 1);
	mb_u32(&m, 1);
	mb_u16(&m, 4);
	mb_u32(&m, 0);
	T_EQ_INT(dns_response_parse(m.b, m.n, &r), -1);
	m.b[self + 1] = (uint8_t)(self + 2);
	T_EQ_INT(dns_response_parse(m.b, m.n, &r), -1);
	/* A label loop through two pointers inside one name ("x" then back to x). */
	mb_header(&m, 1, 0x8180, 1, 1, 0, 0);
	mb_name(&m, "a.b");
	mb_u16(&m, 1);
	mb_u16(&m, 1);
	size_t at = m.n;
	m.b[m.n++] = 1;
	m.b[m.n++] = 'x';
	mb_u16(&m, 0xC000 | (unsigned)at);
	mb_u16(&m, 1);
	mb_u16(&m, 1);
	mb_u32(&m, 1);
	mb_u16(&m, 4);
	mb_u32(&m, 0);
	T_EQ_INT(dns_response_parse(m.b, m.n, &r), -1);
	/* An A record with 5 bytes of data. */
	mb_header(&m, 1, 0x8180, 1, 1, 0, 0);
	mb_name(&m, "a.b");
	mb_u16(&m, 1);
	mb_u16(&m, 1);
	mb_u16(&m, 0xC00C);
	mb_u16(&m, 1);
	mb_u16(&m, 1);
	mb_u32(&m, 1);
	mb_u16(&m, 5);
	mb_u32(&m, 0);
	m.b[m.n++] = 0;
	T_EQ_INT(dns_response_parse(m.b, m.n, &r), -1);
}

static void test_addr_sets(void)
{
	discovery_addr a[6] = {{"10.0.0.3:80"}, {"10.0.0.1:80"}, {"10.0.0.3:80"}, {"[fd00::1]:80"}, {"10.0.0.2:80"}, {"10.0.0.1:80"}};
	size_t n = discovery_addrs_normalize(a, 6);
	T_EQ_INT(n, 4);
	T_EQ_STR(a[0].addr, "10.0.0.1:80");
	T_EQ_STR(a[3].addr, "[fd00::1]:80");
	discovery_addr b[3] = {{"10.0.0.2:80"}, {"10.0.0.4:80"}, {"[fd00::1]:80"}};
	size_t added[3], removed[4], na, nr;
	discovery_diff(a, n, b, 3, added, &na, removed, &nr);
	T_EQ_INT(na, 1);
	T_EQ_STR(b[added[0]].addr, "10.0.0.4:80");
	T_EQ_INT(nr, 2);
	T_EQ_STR(a[removed[0]].addr, "10.0.0.1:80");
	T_EQ_STR(a[removed[1]].addr, "10.0.0.3:80");
	discovery_diff(NULL, 0, b, 3, NULL, &na, NULL, &nr);
	T_EQ_INT(na, 3);
	T_EQ_INT(nr, 0);
	discovery_diff(b, 3, NULL, 0, NULL, &na, NULL, &nr);
	T_EQ_INT(na, 0);
	T_EQ_INT(nr, 3);
	T_CHECK(discovery_addrs_equal(b, 3, b, 3));
	T_CHECK(!discovery_addrs_equal(a, n, b, 3));

	discovery_addr f;
	uint8_t v6[16] = {0xfd, 0, [15] = 5};
	T_EQ_INT(discovery_addr_format(&f, AF_INET6, v6, 8000), 0);
	T_EQ_STR(f.addr, "[fd00::5]:8000");

	char path[] = "/tmp/test_discovery_resolv.XXXXXX";
	int fd = mkstemp(path);
	T_CHECK(fd >= 0);
	const char *text = "# comment\nsearch default.svc.cluster.local\nnameserver 10.96.0.10\n"
			   "nameserver fe80::1%eth0\nnameserver ::1\nnameserver bogus\noptions ndots:5\n";
	T_EQ_INT(write(fd, text, strlen(text)), (long long)strlen(text));
	close(fd);
	char ns[4][NET_ADDR_STRLEN];
	T_EQ_INT(discovery_read_resolv_conf(path, ns, 4), 2);
	T_EQ_STR(ns[0], "10.96.0.10:53");
	T_EQ_STR(ns[1], "[::1]:53");
	unlink(path);
	T_EQ_INT(discovery_read_resolv_conf("/nonexistent/resolv.conf", ns, 4), 0);
	T_EQ_INT(discovery_kind_parse("srv"), DISCOVERY_SRV);
	T_EQ_INT(discovery_kind_parse("nope"), -1);
}

/* ------------------------------------------------------------ a scripted DNS server */

enum { FAKE_OK,
       FAKE_SILENT,
       FAKE_SERVFAIL,
       FAKE_NXDOMAIN,
       FAKE_TRUNCATED };

typedef struct fake_dns {
	int fd;
	int port;
	int mode;
	int forge_first;    /* send a wrong-id answer before each right one */
	int srv_additional; /* SRV answers carry the targets' A records */
	const char *a[8];   /* A of "svc.test" */
	size_t n_a;
	const char *aaaa[4];
	size_t n_aaaa;
	unsigned queries, srv_queries, target_queries;
} fake_dns;

static void fake_on_read(ev_loop *loop, int fd, int mask, void *arg)
{
	fake_dns *f = arg;
	uint8_t in[512];
	struct sockaddr_storage peer;
	socklen_t plen = sizeof(peer);
	ssize_t n = recvfrom(fd, in, sizeof(in), 0, (struct sockaddr *)&peer, &plen);
	if (n < 12) return;
	f->queries++;
	size_t off = 12;
	char qname[DNS_NAME_MAX];
	if (name_read(in, (size_t)n, &off, qname) < 0) return;
	unsigned qtype = rd16(in + off);
	size_t qend = off + 4;
	if (f->mode == FAKE_SILENT) return;
	mb m;
	unsigned id = rd16(in);
	unsigned rcode = f->mode == FAKE_SERVFAIL ? 2 : f->mode == FAKE_NXDOMAIN ? 3
										 : 0;
	unsigned flags = 0x8180 | rcode | (f->mode == FAKE_TRUNCATED ? 0x0200 : 0);
	mb_header(&m, id, flags, 1, 0, 0, 0);
	memcpy(m.b + 12, in + 12, qend - 12);
	m.n = qend;
	unsigned an = 0, ar = 0;
	if (f->mode == FAKE_OK && strcmp(qname, "svc.test") == 0 && qtype == DNS_TYPE_A) {
		for (size_t i = 0; i < f->n_a; i++, an++) mb_rr_a_ptr(&m, f->a[i]);
	} else if (f->mode == FAKE_OK && strcmp(qname, "svc.test") == 0 && qtype == DNS_TYPE_AAAA) {
		for (size_t i = 0; i < f->n_aaaa; i++, an++) {
			mb_u16(&m, 0xC00C);
			mb_u16(&m, DNS_TYPE_AAAA);
			mb_u16(&m, 1);
			mb_u32(&m, 30);
			mb_u16(&m, 16);
			inet_pton(AF_INET6, f->aaaa[i], m.b + m.n);
			m.n += 16;
		}
	} else if (f->mode == FAKE_OK && strcmp(qname, "_http._tcp.svc.test") == 0 && qtype == DNS_TYPE_SRV) {
		f->srv_queries++;
		for (int t = 0; t < 2; t++, an++) {
			char target[32];
			snprintf(target, sizeof(target), "pod%d.svc.test", t);
			mb_u16(&m, 0xC00C);
			mb_u16(&m, DNS_TYPE_SRV);
			mb_u16(&m, 1);
			mb_u32(&m, 30);
			int tn = name_encode(m.b + m.n + 8, 64, target);
			mb_u16(&m, 6 + (unsigned)tn);
			mb_u16(&m, 0);
			mb_u16(&m, 1);
			mb_u16(&m, (unsigned)(9000 + t));
			m.n += (size_t)tn;
		}
		if (f->srv_additional) {
			for (int t = 0; t < 2; t++, ar++) {
				char target[32];
				snprintf(target, sizeof(target), "pod%d.svc.test", t);
				mb_name(&m, target);
				mb_u16(&m, DNS_TYPE_A);
				mb_u16(&m, 1);
				mb_u32(&m, 30);
				mb_u16(&m, 4);
				uint8_t ip[4] = {127, 0, 9, (uint8_t)(t + 1)};
				memcpy(m.b + m.n, ip, 4);
				m.n += 4;
			}
		}
	} else if (f->mode == FAKE_OK && strncmp(qname, "pod", 3) == 0 && qtype == DNS_TYPE_A) {
		f->target_queries++;
		mb_rr_a_ptr(&m, qname[3] == '0' ? "127.0.8.1" : "127.0.8.2");
		an++;
	}
	m.b[7] = (uint8_t)an;
	m.b[11] = (uint8_t)ar;
	if (f->forge_first) {
		uint8_t forged[2048];
		memcpy(forged, m.b, m.n);
		forged[0] ^= 0x55; /* wrong id */
		sendto(fd, forged, m.n, 0, (struct sockaddr *)&peer, plen);
	}
	sendto(fd, m.b, m.n, 0, (struct sockaddr *)&peer, plen);
}

static void fake_start(ev_loop *loop, fake_dns *f)
{
	f->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	T_EQ_INT(bind(f->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	socklen_t l = sizeof(sa);
	getsockname(f->fd, (struct sockaddr *)&sa, &l);
	f->port = ntohs(sa.sin_port);
	ev_set(loop, f->fd, EV_READ, fake_on_read, f);
}

static void fake_stop(ev_loop *loop, fake_dns *f)
{
	ev_del(loop, f->fd);
	close(f->fd);
}

/* What the callback saw. */
typedef struct seen {
	unsigned calls;
	char set[512]; /* the last set, joined by spaces */
	int free_in_cb;
} seen;

static void on_change(discovery *d, const discovery_addr *addrs, size_t n, void *arg)
{
	seen *s = arg;
	s->calls++;
	s->set[0] = 0;
	for (size_t i = 0; i < n; i++) {
		if (i) strcat(s->set, " ");
		strcat(s->set, addrs[i].addr);
	}
	if (s->free_in_cb) discovery_free(d);
}

/* Runs the loop until cond or max_ms passed. */
#define RUN_UNTIL(loop, cond, max_ms) \
	do { \
		uint64_t t_end_ = time_mono_ms() + (max_ms); \
		while (!(cond) && time_mono_ms() < t_end_) ev_run_once((loop), 20); \
	} while (0)

static discovery *start(ev_loop *loop, fake_dns *f, int kind, const char *name, seen *s)
{
	discovery_spec sp = {.kind = kind, .port = 8000, .interval_ms = 50, .timeout_ms = 80, .attempts = 2};
	str_copy(sp.name, name, sizeof(sp.name));
	snprintf(sp.resolver, sizeof(sp.resolver), "127.0.0.1:%d", f->port);
	char err[256] = "";
	discovery *d = discovery_new(loop, &sp, on_change, s, err, sizeof(err));
	T_CHECK(d != NULL);
	if (!d) fprintf(stderr, "  discovery_new: %s\n", err);
	return d;
}

static void test_dns_live(void)
{
	ev_loop *loop = ev_new();
	fake_dns f = {.a = {"127.0.0.2", "127.0.0.3"}, .n_a = 2, .aaaa = {"::1"}, .n_aaaa = 1, .forge_first = 1};
	fake_start(loop, &f);
	seen s = {0};
	discovery *d = start(loop, &f, DISCOVERY_DNS, "svc.test", &s);
	RUN_UNTIL(loop, s.calls >= 1, 2000);
	T_EQ_INT(s.calls, 1);
	T_EQ_STR(s.set, "127.0.0.2:8000 127.0.0.3:8000 [::1]:8000");
	const discovery_stats *st = discovery_get_stats(d);
	T_EQ_INT(st->failures_total, 0); /* the forged answers were ignored */

	/* A new address joins, one leaves. */
	f.a[0] = "127.0.0.4";
	RUN_UNTIL(loop, s.calls >= 2, 2000);
	T_EQ_STR(s.set, "127.0.0.3:8000 127.0.0.4:8000 [::1]:8000");
	uint64_t res = st->resolutions_total;
	RUN_UNTIL(loop, st->resolutions_total >= res + 3, 2000);
	T_EQ_INT(s.calls, 2); /* unchanged rounds call nothing */

	/* The server goes silent: rounds fail, the set stays. */
	f.mode = FAKE_SILENT;
	RUN_UNTIL(loop, st->failures_total >= 2, 3000);
	T_CHECK(st->failures_total >= 2);
	T_CHECK(strstr(st->last_error, "timeout") != NULL);
	T_EQ_INT(s.calls, 2);
	T_EQ_INT(st->n_addrs, 3);
	/* SERVFAIL and truncated answers fail too. */
	f.mode = FAKE_SERVFAIL;
	uint64_t fails = st->failures_total;
	RUN_UNTIL(loop, st->failures_total >= fails + 1 && strstr(st->last_error, "SERVFAIL"), 2000);
	T_CHECK(strstr(st->last_error, "SERVFAIL") != NULL);
	f.mode = FAKE_TRUNCATED;
	fails = st->failures_total;
	RUN_UNTIL(loop, st->failures_total >= fails + 1 && strstr(st->last_error, "truncated"), 2000);
	T_CHECK(strstr(st->last_error, "truncated") != NULL);
	T_EQ_INT(s.calls, 2);
	/* Back: the same set, no call. NXDOMAIN: the set empties. */
	f.mode = FAKE_OK;
	res = st->resolutions_total;
	RUN_UNTIL(loop, st->resolutions_total >= res + 2, 2000);
	T_EQ_INT(s.calls, 2);
	T_EQ_STR(st->last_error, "");
	f.mode = FAKE_NXDOMAIN;
	RUN_UNTIL(loop, s.calls >= 3, 2000);
	T_EQ_STR(s.set, "");
	T_EQ_INT(st->n_addrs, 0);
	discovery_free(d);
	/* No timer or socket of it is left behind. */
	unsigned q = f.queries;
	RUN_UNTIL(loop, 0, 200);
	T_EQ_INT(f.queries, q);

	/* IPv4 only, and freeing from inside the callback. */
	f.mode = FAKE_OK;
	seen s2 = {.free_in_cb = 1};
	discovery_spec sp = {.kind = DISCOVERY_DNS, .name = "svc.test", .port = 81, .no_ipv6 = 1, .interval_ms = 50};
	snprintf(sp.resolver, sizeof(sp.resolver), "127.0.0.1:%d", f.port);
	char err[256];
	d = discovery_new(loop, &sp, on_change, &s2, err, sizeof(err));
	RUN_UNTIL(loop, s2.calls >= 1, 2000);
	T_EQ_STR(s2.set, "127.0.0.3:81 127.0.0.4:81");
	RUN_UNTIL(loop, 0, 200);
	T_EQ_INT(s2.calls, 1);

	/* Nobody listening at the resolver: refused at once, counted. */
	seen s3 = {0};
	sp.no_ipv6 = 0;
	str_copy(sp.resolver, "127.0.0.1:9", sizeof(sp.resolver));
	d = discovery_new(loop, &sp, on_change, &s3, err, sizeof(err));
	RUN_UNTIL(loop, discovery_get_stats(d)->failures_total >= 1, 2000);
	T_CHECK(discovery_get_stats(d)->failures_total >= 1);
	T_EQ_INT(s3.calls, 0);
	T_EQ_INT(discovery_get_stats(d)->have_set, 0);
	discovery_free(d);

	fake_stop(loop, &f);
	ev_free(loop);
}

static void test_srv_live(void)
{
	ev_loop *loop = ev_new();
	fake_dns f = {0};
	fake_start(loop, &f);
	seen s = {0};
	/* Targets answered in the additional section: one question. */
	f.srv_additional = 1;
	discovery_spec sp = {.kind = DISCOVERY_SRV, .name = "_http._tcp.svc.test", .interval_ms = 50, .no_ipv6 = 1};
	snprintf(sp.resolver, sizeof(sp.resolver), "127.0.0.1:%d", f.port);
	char err[256];
	discovery *d = discovery_new(loop, &sp, on_change, &s, err, sizeof(err));
	RUN_UNTIL(loop, s.calls >= 1, 2000);
	T_EQ_STR(s.set, "127.0.9.1:9000 127.0.9.2:9001");
	T_EQ_INT(f.target_queries, 0);
	/* Without them: each target asked for. */
	f.srv_additional = 0;
	RUN_UNTIL(loop, s.calls >= 2, 2000);
	T_EQ_STR(s.set, "127.0.8.1:9000 127.0.8.2:9001");
	T_CHECK(f.target_queries >= 2);
	discovery_free(d);
	fake_stop(loop, &f);
	ev_free(loop);
}

static void test_spec_errors(void)
{
	ev_loop *loop = ev_new();
	char err[256];
	discovery_spec sp = {.kind = DISCOVERY_DNS, .name = "svc.test"};
	T_CHECK(discovery_new(loop, &sp, NULL, NULL, err, sizeof(err)) == NULL);
	T_CHECK(strstr(err, "port") != NULL);
	sp.port = 1;
	str_copy(sp.name, "bad name", sizeof(sp.name));
	T_CHECK(discovery_new(loop, &sp, NULL, NULL, err, sizeof(err)) == NULL);
	T_CHECK(strstr(err, "not a valid DNS name") != NULL);
	str_copy(sp.name, "ok.name", sizeof(sp.name));
	str_copy(sp.resolver, "dns.example:53", sizeof(sp.resolver));
	T_CHECK(discovery_new(loop, &sp, NULL, NULL, err, sizeof(err)) == NULL);
	discovery_spec k = {.kind = DISCOVERY_KUBERNETES};
	T_CHECK(discovery_new(loop, &k, NULL, NULL, err, sizeof(err)) == NULL);
	T_CHECK(strstr(err, "service") != NULL);
	/* A resolv.conf without nameservers: rounds fail, counted. */
	discovery_spec r = {.kind = DISCOVERY_DNS, .name = "svc.test", .port = 1, .interval_ms = 30};
	str_copy(r.resolv_conf, "/nonexistent/resolv.conf", sizeof(r.resolv_conf));
	discovery *d = discovery_new(loop, &r, NULL, NULL, err, sizeof(err));
	T_CHECK(d != NULL);
	RUN_UNTIL(loop, discovery_get_stats(d)->failures_total >= 2, 1000);
	T_CHECK(strstr(discovery_get_stats(d)->last_error, "no nameserver") != NULL);
	discovery_free(d);
	ev_free(loop);
}

/* A watch event's object name keys its slice: an empty name, or one with a
 * NUL inside, is malformed and changes nothing (the fuzzer found an empty
 * name stored as a slice). */
static void test_watch_names(void)
{
	discovery d;
	memset(&d, 0, sizeof(d));
	d.spec.kind = DISCOVERY_KUBERNETES;
	d.spec.port = 8000;
	k8s_state *s = calloc(1, sizeof(*s));
	s->d = &d;
	s->fd = -1;
	s->mode = K8S_WATCH;
	char why[192];
	static const char ok_ev[] = "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"s-1\"},"
				    "\"addressType\":\"IPv4\",\"ports\":[{\"port\":8000}],\"endpoints\":[{\"addresses\":[\"10.0.0.1\"],"
				    "\"conditions\":{\"ready\":true}}]}}";
	T_EQ_INT(watch_apply(s, ok_ev, sizeof(ok_ev) - 1, why, sizeof(why)), K8S_W_CHANGED);
	T_EQ_INT(s->n_slices, 1);
	static const char empty_ev[] = "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"\"},"
				       "\"addressType\":\"IPv4\",\"ports\":[{\"port\":8000}],\"endpoints\":[]}}";
	T_EQ_INT(watch_apply(s, empty_ev, sizeof(empty_ev) - 1, why, sizeof(why)), K8S_W_MALFORMED);
	static const char nul_ev[] = "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"s-1\\u0000x\"},"
				     "\"addressType\":\"IPv4\",\"ports\":[{\"port\":8000}],\"endpoints\":[]}}";
	T_EQ_INT(watch_apply(s, nul_ev, sizeof(nul_ev) - 1, why, sizeof(why)), K8S_W_MALFORMED);
	T_EQ_INT(s->n_slices, 1);
	T_EQ_STR(s->slices[0].name, "s-1");
	slices_clear(s);
	free(s);
}

int main(void)
{
	T_RUN(test_query_build);
	T_RUN(test_response_parse);
	T_RUN(test_addr_sets);
	T_RUN(test_dns_live);
	T_RUN(test_srv_live);
	T_RUN(test_spec_errors);
	T_RUN(test_watch_names);
	return T_END();
}
