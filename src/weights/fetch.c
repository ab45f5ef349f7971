/*
 * fetch.c — parallel ranged GETs over one libcurl multi handle, written into
 * files at their offsets. Retries, backoff, stall detection (libcurl's low
 * speed limit), short-body detection. See fetch.h for the contract.
 */
#include "weights/fetch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "weights/xfer.h"

#define MAX_CONNECTIONS 64
#define FETCH_RECV_BUFFER_BYTES (512L << 10) /* per transfer: libcurl's receive buffer */
#define FETCH_WRITE_BUFFER_BYTES (1u << 20)  /* per transfer: body bytes gathered for one pwrite */

/* One transfer in flight. */
typedef struct slot {
	CURL *h;
	fetch_file *f;
	size_t idx;
	uint64_t off, len, got;
	int overflow; /* the server sent more than asked, or ignored Range */
	int checked;  /* the answer's headers were checked (at its first body byte) */
	int bad;      /* 1: the object changed; -1: a wrong range (why says it) */
	char why[400];
	int io_error;  /* pwrite failed */
	char *wbuf;    /* body bytes not yet written: FETCH_WRITE_BUFFER_BYTES, engine-owned */
	size_t wlen;   /* bytes in wbuf; they belong at off + got - wlen */
	xfer_resp hdr; /* headers we care about (X-Error-Code, Content-Range, ETag) */
	wsrc *src;     /* borrowed, for the answer checks */
	char *url;
	struct curl_slist *hdrs;
	char ebuf[CURL_ERROR_SIZE];
} slot;

int fetch_file_plan(fetch_file *f, uint64_t size, uint64_t chunk_bytes)
{
	if (chunk_bytes < 4096) chunk_bytes = 4096;
	uint64_t n = (size + chunk_bytes - 1) / chunk_bytes;
	if (n > FETCH_MAX_CHUNKS) {
		chunk_bytes = (size + FETCH_MAX_CHUNKS - 1) / FETCH_MAX_CHUNKS;
		n = (size + chunk_bytes - 1) / chunk_bytes;
	}
	f->chunk_bytes = chunk_bytes;
	f->n_chunks = (size_t)n;
	return 0;
}

static void lock(const fetch_opts *fo)
{
	if (fo->lock) pthread_mutex_lock(fo->lock);
}
static void unlock(const fetch_opts *fo)
{
	if (fo->lock) pthread_mutex_unlock(fo->lock);
}

static uint64_t chunk_len(const fetch_file *f, size_t idx)
{
	uint64_t off = (uint64_t)idx * f->chunk_bytes;
	return MIN(f->chunk_bytes, f->file->size - off);
}

static size_t on_header(char *p, size_t sz, size_t nm, void *arg)
{
	slot *s = arg;
	size_t n = sz * nm;
	xfer_parse_header(&s->hdr, p, n);
	return n;
}

/* Writes the gathered body bytes at their offset. 0, or -1 with io_error set. */
static int flush(slot *s)
{
	uint64_t at = s->off + s->got - s->wlen;
	size_t w = 0;
	while (w < s->wlen) {
		ssize_t k = pwrite(s->f->fd, s->wbuf + w, s->wlen - w, (off_t)(at + w));
		if (k < 0 && errno == EINTR) continue;
		if (k <= 0) {
			s->io_error = k < 0 && errno ? errno : EIO;
			s->wlen = 0;
			return -1;
		}
		w += (size_t)k;
	}
	s->wlen = 0;
	return 0;
}

static size_t on_body(char *p, size_t sz, size_t nm, void *arg)
{
	slot *s = arg;
	size_t n = sz * nm;
	long st = 0;
	curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &st);
	if (st != 206 && st != 200) return n; /* an error body: read and drop */
	if (st == 200 && !(s->off == 0 && s->len == s->f->file->size)) {
		s->overflow = 1;
		return 0;
	}
	if (!s->checked) {
		/* Headers are complete: nothing is written before the range and
		 * the version are known to be the ones asked for. */
		s->checked = 1;
		s->hdr.status = st;
		int c = wsrc_check_range_answer(s->src, s->f->file, s->f->pin, s->off, s->len, &s->hdr, s->why,
						sizeof s->why);
		if (c) {
			s->bad = c;
			return 0;
		}
		/* The first ETag seen pins the rest (a weak one cannot be used in
		 * If-Match, which compares strongly). */
		if (!s->f->pin[0] && s->hdr.etag[0] && strncmp(s->hdr.etag, "W/", 2))
			str_copy(s->f->pin, s->hdr.etag, sizeof s->f->pin);
	}
	if (s->got + n > s->len) {
		s->overflow = 1;
		return 0;
	}
	/* libcurl hands the body over in pieces of at most 16 KiB whatever its
	 * buffer size; one pwrite each would cost more than the transfer itself. */
	while (n) {
		size_t take = MIN(n, FETCH_WRITE_BUFFER_BYTES - s->wlen);
		memcpy(s->wbuf + s->wlen, p, take);
		s->wlen += take;
		s->got += take;
		p += take;
		n -= take;
		if (s->wlen == FETCH_WRITE_BUFFER_BYTES && flush(s)) return 0;
	}
	return sz * nm;
}

static void slot_clear(slot *s)
{
	free(s->url);
	curl_slist_free_all(s->hdrs);
	s->url = NULL;
	s->hdrs = NULL;
	s->f = NULL;
}

/* Picks the next chunk to start, marks it in flight. Called under lock. */
static int next_chunk(fetch_file *files, size_t n, uint64_t now, fetch_file **out, size_t *idx, uint64_t *wake_ms)
{
	for (size_t i = 0; i < n; i++) {
		fetch_file *f = &files[i];
		if (f->failed) continue;
		if (f->pick) {
			long k = f->pick(f->arg, f);
			if (k >= 0 && (size_t)k < f->n_chunks && f->state[k] == FETCH_MISSING && f->not_before_ms[k] <= now) {
				f->state[k] = FETCH_INFLIGHT;
				*out = f;
				*idx = (size_t)k;
				return 1;
			}
		}
		while (f->cursor < f->n_chunks && f->state[f->cursor] == FETCH_DONE) f->cursor++;
		for (size_t k = f->cursor; k < f->n_chunks; k++) {
			if (f->state[k] != FETCH_MISSING) continue;
			if (f->not_before_ms[k] > now) {
				if (f->not_before_ms[k] < *wake_ms) *wake_ms = f->not_before_ms[k];
				continue;
			}
			f->state[k] = FETCH_INFLIGHT;
			*out = f;
			*idx = k;
			return 1;
		}
	}
	return 0;
}

static int start(wsrc *src, const fetch_opts *fo, CURLM *m, slot *s, fetch_file *f, size_t idx)
{
	memset(&s->hdr, 0, sizeof s->hdr);
	s->hdr.content_length = s->hdr.linked_size = -1;
	s->hdr.range_first = s->hdr.range_last = s->hdr.range_total = -1;
	s->src = src;
	s->checked = s->bad = 0;
	s->why[0] = 0;
	s->f = f;
	s->idx = idx;
	s->off = (uint64_t)idx * f->chunk_bytes;
	s->len = chunk_len(f, idx);
	s->got = 0;
	s->wlen = 0;
	s->overflow = s->io_error = 0;
	s->ebuf[0] = 0;
	if (wsrc_get_request(src, f->file, s->off, s->len, f->pin, &s->url, &s->hdrs)) return -1;
	curl_easy_reset(s->h);
	xfer_setup(s->h, fo->o, 1);
	curl_easy_setopt(s->h, CURLOPT_URL, s->url);
	curl_easy_setopt(s->h, CURLOPT_HTTPHEADER, s->hdrs);
	curl_easy_setopt(s->h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(s->h, CURLOPT_HEADERDATA, s);
	curl_easy_setopt(s->h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(s->h, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(s->h, CURLOPT_ERRORBUFFER, s->ebuf);
	curl_easy_setopt(s->h, CURLOPT_PRIVATE, s);
	/* libcurl's default 16 KiB receive buffer costs a recv, a pwrite and a poll
	 * per 16 KiB: on a fast link that is most of the CPU time. */
	curl_easy_setopt(s->h, CURLOPT_BUFFERSIZE, (long)FETCH_RECV_BUFFER_BYTES);
	return curl_multi_add_handle(m, s->h) == CURLM_OK ? 0 : -1;
}

/* Records a finished transfer: done, retry later, or the file failed. Under lock. */
static void finish(wsrc *src, const fetch_opts *fo, slot *s, CURLcode cc)
{
	fetch_file *f = s->f;
	long st = 0;
	curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &st);
	char why[400] = "";
	int fatal = 0;
	if (!s->bad && st == 412 && cc == CURLE_OK) {
		s->hdr.status = st;
		s->bad = wsrc_check_range_answer(src, f->file, f->pin, s->off, s->len, &s->hdr, s->why, sizeof s->why);
	}
	if (s->bad) {
		/* Never retried: another try would mix versions or take a wrong range. */
		snprintf(why, sizeof why, "%s", s->why);
		fatal = 1;
		if (s->bad > 0) f->changed = 1;
	} else if (s->io_error) {
		snprintf(why, sizeof why, "writing %s: %s", f->file->path, strerror(s->io_error));
		fatal = 1;
	} else if (s->overflow) {
		snprintf(why, sizeof why, "%s: the server sent more than the range asked (does it support Range?)", f->file->path);
		fatal = 1;
	} else if (cc != CURLE_OK) {
		snprintf(why, sizeof why, "%s bytes %llu-%llu: %s%s", f->file->path, (unsigned long long)s->off,
			 (unsigned long long)(s->off + s->len - 1),
			 cc == CURLE_PARTIAL_FILE ? "short body: " : cc == CURLE_OPERATION_TIMEDOUT ? "stalled or timed out: "
												    : "",
			 s->ebuf[0] ? s->ebuf : curl_easy_strerror(cc));
		if (cc == CURLE_TOO_MANY_REDIRECTS || cc == CURLE_UNSUPPORTED_PROTOCOL) fatal = 1;
	} else if (st != 206 && st != 200) {
		if (xfer_transient_status(st)) {
			snprintf(why, sizeof why, "%s: HTTP %ld", f->file->path, st);
		} else {
			wsrc_explain_status(src, st, s->hdr.error_code, f->file->path, why, sizeof why);
			fatal = 1;
		}
	} else if (s->got != s->len) {
		snprintf(why, sizeof why, "%s bytes %llu-%llu: short body (%llu of %llu bytes)", f->file->path,
			 (unsigned long long)s->off, (unsigned long long)(s->off + s->len - 1),
			 (unsigned long long)s->got, (unsigned long long)s->len);
	}
	if (!why[0]) {
		f->state[s->idx] = FETCH_DONE;
		f->done_bytes += s->len;
		if (f->on_chunk) f->on_chunk(f->arg, f, s->idx);
		return;
	}
	f->state[s->idx] = FETCH_MISSING;
	if (!fatal && f->attempts[s->idx] < (fo->o->retries > 250 ? 250 : fo->o->retries)) {
		unsigned a = f->attempts[s->idx]++;
		uint64_t backoff = MIN(200ull << MIN(a, 5u), 5000ull);
		f->not_before_ms[s->idx] = time_mono_ms() + backoff;
		log_ratelimited(LOG_WARN, "%s; retry %u of %d in %llu ms", why, a + 1, fo->o->retries,
				(unsigned long long)backoff);
		return;
	}
	if (!f->failed) {
		f->failed = 1;
		if (!fatal) snprintf(f->err, sizeof f->err, "%s (after %d retries)", why, fo->o->retries);
		else snprintf(f->err, sizeof f->err, "%s", why);
	}
}

int fetch_run(wsrc *src, fetch_file *files, size_t n, const fetch_opts *fo)
{
	xfer_global_init();
	int conns = fo->o->connections < 1 ? 1 : MIN(fo->o->connections, MAX_CONNECTIONS);
	CURLM *m = curl_multi_init();
	slot *slots = calloc((size_t)conns, sizeof *slots);
	int rc = -1;
	if (!m || !slots) goto out;
	curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, (long)conns);
	for (int i = 0; i < conns; i++)
		if (!(slots[i].h = curl_easy_init()) || !(slots[i].wbuf = malloc(FETCH_WRITE_BUFFER_BYTES))) goto out;
	for (size_t i = 0; i < n; i++) {
		files[i].attempts = calloc(files[i].n_chunks + 1, 1);
		files[i].not_before_ms = calloc(files[i].n_chunks + 1, sizeof(uint64_t));
		if (!files[i].attempts || !files[i].not_before_ms) goto out;
		files[i].failed = 0;
		files[i].changed = 0;
		files[i].err[0] = 0;
		files[i].cursor = 0;
		lock(fo);
		files[i].done_bytes = 0;
		for (size_t k = 0; k < files[i].n_chunks; k++) {
			if (files[i].state[k] == FETCH_INFLIGHT) files[i].state[k] = FETCH_MISSING;
			if (files[i].state[k] == FETCH_DONE) files[i].done_bytes += chunk_len(&files[i], k);
		}
		unlock(fo);
	}
	int active = 0;
	uint64_t last_progress = 0;
	for (;;) {
		if (fo->cancel && *fo->cancel) break;
		uint64_t now = time_mono_ms(), wake = UINT64_MAX;
		lock(fo);
		for (int i = 0; i < conns; i++) {
			if (slots[i].f) continue;
			fetch_file *f;
			size_t idx;
			if (!next_chunk(files, n, now, &f, &idx, &wake)) break;
			if (start(src, fo, m, &slots[i], f, idx)) {
				f->state[idx] = FETCH_MISSING;
				f->failed = 1;
				snprintf(f->err, sizeof f->err, "%s: cannot build the request", f->file->path);
				slot_clear(&slots[i]);
				continue;
			}
			active++;
		}
		unlock(fo);
		if (!active) {
			if (wake == UINT64_MAX) break; /* nothing left to do */
			uint64_t nap = MIN(wake - now, 200ull);
			usleep((useconds_t)nap * 1000u);
			continue;
		}
		int running = 0;
		curl_multi_perform(m, &running);
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(m, &left))) {
			if (msg->msg != CURLMSG_DONE) continue;
			slot *s = NULL;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
			CURLcode cc = msg->data.result;
			curl_multi_remove_handle(m, s->h);
			if (cc == CURLE_OK && s->wlen && !s->io_error) flush(s); /* the tail */
			lock(fo);
			finish(src, fo, s, cc);
			unlock(fo);
			slot_clear(s);
			active--;
		}
		if (fo->progress && now - last_progress >= 200) {
			uint64_t sum = 0;
			lock(fo);
			for (size_t i = 0; i < n; i++) sum += files[i].done_bytes;
			unlock(fo);
			for (int i = 0; i < conns; i++)
				if (slots[i].f) sum += slots[i].got;
			fo->progress(fo->progress_arg, sum);
			last_progress = now;
		}
		if (active) curl_multi_poll(m, NULL, 0, 100, NULL);
	}
	rc = 0;
	for (size_t i = 0; i < n; i++) {
		if (files[i].failed) {
			rc = -1;
			continue;
		}
		for (size_t k = 0; k < files[i].n_chunks; k++)
			if (files[i].state[k] != FETCH_DONE) {
				rc = -1;
				break;
			}
	}
out:
	if (slots) {
		for (int i = 0; i < conns; i++) {
			if (slots[i].f) {
				curl_multi_remove_handle(m, slots[i].h);
				lock(fo);
				if (slots[i].f->state[slots[i].idx] == FETCH_INFLIGHT) slots[i].f->state[slots[i].idx] = FETCH_MISSING;
				unlock(fo);
				slot_clear(&slots[i]);
			}
			if (slots[i].h) curl_easy_cleanup(slots[i].h);
			free(slots[i].wbuf);
		}
		free(slots);
	}
	for (size_t i = 0; i < n; i++) {
		free(files[i].attempts);
		free(files[i].not_before_ms);
		files[i].attempts = NULL;
		files[i].not_before_ms = NULL;
	}
	if (m) curl_multi_cleanup(m);
	return rc;
}
