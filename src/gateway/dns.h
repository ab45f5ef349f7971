/*
 * dns.h — a minimal DNS message codec (RFC 1035, 2782, 3596) for service
 * discovery: builds one-question queries and reads the records of an answer.
 *
 * Only what discovery needs: questions of type A, AAAA and SRV in class IN,
 * answers and additional records of type A, AAAA, SRV and CNAME (others are
 * skipped). Names are read with compression pointers that must point backwards
 * (so a loop cannot exist) and are checked against RFC 1035's limits (63-byte
 * labels, 255-byte names). Pure functions: no sockets, no allocation, no
 * state; safe on any input (tests/fuzz/fuzz_dns.c).
 *
 * Not here: sending, timeouts, retries (discovery_dns.c), EDNS, DNSSEC, TCP.
 */
#ifndef GATEWAY_DNS_H
#define GATEWAY_DNS_H

#include <stddef.h>
#include <stdint.h>

#define DNS_TYPE_A 1
#define DNS_TYPE_CNAME 5
#define DNS_TYPE_AAAA 28
#define DNS_TYPE_SRV 33
#define DNS_CLASS_IN 1

#define DNS_RCODE_NOERROR 0
#define DNS_RCODE_FORMERR 1
#define DNS_RCODE_SERVFAIL 2
#define DNS_RCODE_NXDOMAIN 3
#define DNS_RCODE_REFUSED 5

#define DNS_NAME_MAX 256       /* text form, with the NUL; no trailing dot */
#define DNS_UDP_MAX_BYTES 1232 /* what we accept and advertise over UDP */

enum dns_section { DNS_SECTION_ANSWER = 1,
		   DNS_SECTION_ADDITIONAL = 3 };

/* One resource record, decoded. name and target are lowercase text without the
 * trailing dot ("" is the root). */
typedef struct dns_rr {
	char name[DNS_NAME_MAX];
	uint16_t type;
	uint8_t section; /* enum dns_section */
	uint32_t ttl_s;
	union {
		uint8_t a[4];     /* DNS_TYPE_A, network order */
		uint8_t aaaa[16]; /* DNS_TYPE_AAAA */
		struct {
			uint16_t priority, weight, port;
		} srv; /* DNS_TYPE_SRV (target below) */
	} u;
	char target[DNS_NAME_MAX]; /* SRV target, CNAME canonical name */
} dns_rr;

/* The parts of a response discovery reads. Owner: the caller, who provides
 * rrs (capacity max_rrs); records past the capacity are dropped and counted. */
typedef struct dns_response {
	uint16_t id;
	int rcode;                /* DNS_RCODE_* (4 bits) */
	int truncated;            /* TC bit */
	char qname[DNS_NAME_MAX]; /* the question, lowercase */
	uint16_t qtype;
	dns_rr *rrs;
	size_t max_rrs, n_rrs;
	size_t dropped_rrs; /* kept records over max_rrs */
} dns_response;

/* Writes a recursive query (RD set) for name (text, an optional trailing dot)
 * of qtype into out. Returns its length in bytes, or -1 when the name is not a
 * valid DNS name or out (cap bytes) is too small. */
int dns_query_build(uint8_t *out, size_t cap, uint16_t id, const char *name, uint16_t qtype);

/* Reads a response message of len bytes into r (rrs and max_rrs set by the
 * caller). Returns 0, or -1 when it is malformed or not a response (QR clear,
 * question count not 1). Records of other types and classes are skipped. */
int dns_response_parse(const uint8_t *msg, size_t len, dns_response *r);

/* Case-insensitive comparison of two text names, ignoring one trailing dot on
 * either. 1 when equal. */
int dns_name_eq(const char *a, const char *b);

#endif
