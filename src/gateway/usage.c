/*
 * usage.c — the scanner of usage.h. States: outside strings a '"' starts a
 * string; inside, bytes are kept (up to the key buffer) until the closing
 * unescaped '"'. A string equal to prompt_tokens or completion_tokens arms
 * the machine: it expects ':' (spaces allowed), then digits. Anything else
 * disarms it.
 */
#include "gateway/usage.h"

#include <string.h>

void usage_init(usage_scan *u)
{
	memset(u, 0, sizeof(*u));
	u->prompt_tokens = u->completion_tokens = -1;
}

static void string_end(usage_scan *u)
{
	u->want = 0;
	u->after_colon = 0;
	if (u->key_len > sizeof(u->key)) return;
	if (u->key_len == 13 && !memcmp(u->key, "prompt_tokens", 13)) u->want = 1;
	else if (u->key_len == 17 && !memcmp(u->key, "completion_tokens", 17)) u->want = 2;
	else if (u->key_len == 13 && !memcmp(u->key, "finish_reason", 13)) u->choice_chunks++;
}

static void number_end(usage_scan *u)
{
	if (u->want == 1) u->prompt_tokens = u->number;
	else if (u->want == 2) u->completion_tokens = u->number;
	u->in_number = 0;
	u->want = 0;
	u->after_colon = 0;
}

void usage_feed(usage_scan *u, const char *data, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char ch = data[i];
		if (u->in_string) {
			if (u->escaped) u->escaped = 0;
			else if (ch == '\\') u->escaped = 1;
			else if (ch == '"') {
				u->in_string = 0;
				string_end(u);
				continue;
			}
			if (u->key_len < sizeof(u->key)) u->key[u->key_len] = ch;
			if (u->key_len <= sizeof(u->key)) u->key_len++;
			continue;
		}
		if (u->in_number) {
			if (ch >= '0' && ch <= '9') {
				if (u->number < (INT64_MAX - 9) / 10) u->number = u->number * 10 + (ch - '0');
				continue;
			}
			number_end(u);
		}
		if (ch == '"') {
			u->in_string = 1;
			u->escaped = 0;
			u->key_len = 0;
			if (u->want && u->after_colon) u->want = 0; /* a string value: not ours */
			continue;
		}
		if (!u->want) continue;
		if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') continue;
		if (ch == ':' && !u->after_colon) {
			u->after_colon = 1;
			continue;
		}
		if (u->after_colon && ch >= '0' && ch <= '9') {
			u->in_number = 1;
			u->number = ch - '0';
			continue;
		}
		u->want = 0;
		u->after_colon = 0;
	}
}
