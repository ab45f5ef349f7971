/*
 * dns.c — the DNS message codec of dns.h: one-question queries out, A, AAAA,
 * SRV and CNAME records in. Every read is bounds-checked against the message
 * length; compression pointers must point strictly backwards, which bounds the
 * work per name by the message size and rules out loops.
 */
#include "gateway/dns.h"

#include <string.h>

#define DNS_HEADER_BYTES 12

static uint16_t rd16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static uint32_t rd32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c; }

int dns_name_eq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la && a[la - 1] == '.') la--;
	if (lb && b[lb - 1] == '.') lb--;
	if (la != lb) return 0;
	for (size_t i = 0; i < la; i++)
		if (lower(a[i]) != lower(b[i])) return 0;
	return 1;
}

/* Encodes a text name as labels at out; returns bytes written or -1. Labels are
 * 1..63 bytes of letters, digits, '-' and '_' (SRV names start with '_'). */
static int name_encode(uint8_t *out, size_t cap, const char *name)
{
	size_t len = strlen(name), o = 0;
	if (len && name[len - 1] == '.') len--;
	if (len == 0 || len > 253) return -1;
	size_t i = 0;
	while (i < len) {
		size_t j = i;
		while (j < len && name[j] != '.') {
			char c = name[j];
			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			      c == '-' || c == '_'))
				return -1;
			j++;
		}
		size_t l = j - i;
		if (l == 0 || l > 63 || o + 1 + l + 1 > cap) return -1;
		out[o++] = (uint8_t)l;
		memcpy(out + o, name + i, l);
		o += l;
		i = j + 1;
		if (j < len && i == len) return -1; /* "a..": empty label */
	}
	out[o++] = 0;
	return (int)o;
}

int dns_query_build(uint8_t *out, size_t cap, uint16_t id, const char *name, uint16_t qtype)
{
	if (cap < DNS_HEADER_BYTES + 4) return -1;
	memset(out, 0, DNS_HEADER_BYTES);
	out[0] = (uint8_t)(id >> 8);
	out[1] = (uint8_t)id;
	out[2] = 0x01; /* RD */
	out[5] = 1;    /* QDCOUNT */
	int n = name_encode(out + DNS_HEADER_BYTES, cap - DNS_HEADER_BYTES - 4, name);
	if (n < 0) return -1;
	size_t o = DNS_HEADER_BYTES + (size_t)n;
	out[o++] = (uint8_t)(qtype >> 8);
	out[o++] = (uint8_t)qtype;
	out[o++] = 0;
	out[o++] = DNS_CLASS_IN;
	return (int)o;
}

/* Reads the name at msg[*off] into text (DNS_NAME_MAX bytes), lowercased and
 * dot-separated, following backward pointers. Advances *off past the name as
 * it appears at *off. Returns 0 or -1 (malformed). */
static int name_read(const uint8_t *msg, size_t len, size_t *off, char *text)
{
	size_t p = *off, t = 0, end = 0;
	int jumped = 0;
	size_t limit = p; /* a pointer must point before this */
	for (;;) {
		if (p >= len) return -1;
		uint8_t l = msg[p];
		if ((l & 0xC0) == 0xC0) {
			if (p + 1 >= len) return -1;
			size_t target = ((size_t)(l & 0x3F) << 8) | msg[p + 1];
			if (target >= limit) return -1;
			if (!jumped) end = p + 2;
			jumped = 1;
			limit = target;
			p = target;
			continue;
		}
		if (l & 0xC0) return -1; /* 0x40, 0x80: extended label types */
		if (l == 0) {
			if (!jumped) end = p + 1;
			break;
		}
		if (p + 1 + l > len) return -1;
		if (t + l + 1 >= DNS_NAME_MAX) return -1;
		if (t) text[t++] = '.';
		for (size_t i = 0; i < l; i++) {
			char c = (char)msg[p + 1 + i];
			if (c == '.' || c == '\0') return -1; /* ambiguous in text form */
			text[t++] = lower(c);
		}
		p += 1 + (size_t)l;
		if (!jumped) limit = p;
	}
	text[t] = '\0';
	*off = end;
	return 0;
}

int dns_response_parse(const uint8_t *msg, size_t len, dns_response *r)
{
	r->n_rrs = 0;
	r->dropped_rrs = 0;
	r->qname[0] = '\0';
	if (len < DNS_HEADER_BYTES) return -1;
	r->id = rd16(msg);
	if (!(msg[2] & 0x80)) return -1; /* QR: not a response */
	r->truncated = (msg[2] & 0x02) != 0;
	r->rcode = msg[3] & 0x0F;
	uint16_t qd = rd16(msg + 4), an = rd16(msg + 6), ns = rd16(msg + 8), ar = rd16(msg + 10);
	if (qd != 1) return -1;
	size_t off = DNS_HEADER_BYTES;
	if (name_read(msg, len, &off, r->qname) < 0) return -1;
	if (off + 4 > len) return -1;
	r->qtype = rd16(msg + off);
	off += 4;
	size_t total = (size_t)an + ns + ar;
	for (size_t i = 0; i < total; i++) {
		uint8_t section = i < an ? DNS_SECTION_ANSWER : i < (size_t)an + ns ? 2
										    : DNS_SECTION_ADDITIONAL;
		char name[DNS_NAME_MAX];
		if (name_read(msg, len, &off, name) < 0) return -1;
		if (off + 10 > len) return -1;
		uint16_t type = rd16(msg + off), cls = rd16(msg + off + 2);
		uint32_t ttl = rd32(msg + off + 4);
		uint16_t rdlen = rd16(msg + off + 8);
		off += 10;
		if (off + rdlen > len) return -1;
		size_t rdata = off;
		off += rdlen;
		if (section == 2 || cls != DNS_CLASS_IN) continue;
		if (type != DNS_TYPE_A && type != DNS_TYPE_AAAA && type != DNS_TYPE_SRV && type != DNS_TYPE_CNAME)
			continue;
		dns_rr tmp, *rr = r->n_rrs < r->max_rrs ? &r->rrs[r->n_rrs] : &tmp;
		memcpy(rr->name, name, sizeof(name));
		rr->type = type;
		rr->section = section;
		rr->ttl_s = ttl & 0x7FFFFFFF;
		rr->target[0] = '\0';
		if (type == DNS_TYPE_A) {
			if (rdlen != 4) return -1;
			memcpy(rr->u.a, msg + rdata, 4);
		} else if (type == DNS_TYPE_AAAA) {
			if (rdlen != 16) return -1;
			memcpy(rr->u.aaaa, msg + rdata, 16);
		} else if (type == DNS_TYPE_SRV) {
			if (rdlen < 7) return -1;
			rr->u.srv.priority = rd16(msg + rdata);
			rr->u.srv.weight = rd16(msg + rdata + 2);
			rr->u.srv.port = rd16(msg + rdata + 4);
			size_t t = rdata + 6;
			if (name_read(msg, rdata + rdlen, &t, rr->target) < 0 || t != rdata + rdlen) return -1;
		} else {
			size_t t = rdata;
			if (name_read(msg, rdata + rdlen, &t, rr->target) < 0 || t != rdata + rdlen) return -1;
		}
		if (rr == &tmp)
			r->dropped_rrs++;
		else
			r->n_rrs++;
	}
	return 0;
}
