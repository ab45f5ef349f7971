/*
 * main.c — the infergate-weights command: pull a model from Hugging Face, an
 * HTTP bucket, S3 or GCS into a folder or a bucket; open it in the shared local
 * cache; list it; mount it read-only with FUSE. The work is in libweights
 * (pull.c, cache.c, mount.c); this file parses arguments and prints.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "weights/cache.h"
#include "weights/mount.h"
#include "weights/pull.h"
#include "weights/source.h"
#include "weights/xfer.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage:\n"
		"  infergate-weights pull SOURCE DEST [options]\n"
		"  infergate-weights cache SOURCE --cache-dir DIR [--capacity SIZE] [--offline] [options]\n"
		"  infergate-weights mount SOURCE MOUNTPOINT --cache-dir DIR [--cache-capacity SIZE]\n"
		"                          [--foreground] [--metadata-ttl SECONDS] [--passthrough auto|off] [options]\n"
		"  infergate-weights ls SOURCE [options]\n"
		"\n"
		"SOURCE: hf://ORG/NAME[@REV] | http(s)://HOST/PATH/ | s3://BUCKET/PREFIX | gs://BUCKET/PREFIX\n"
		"DEST:   a folder, or a writable http(s)://…/ (PUT), s3:// or gs:// location\n"
		"\n"
		"options:\n"
		"  --connections N        parallel range requests (default 8)\n"
		"  --chunk-size SIZE      bytes per range request (default 16MiB)\n"
		"  --stall-timeout SECS   retry a range after this long without a byte (default 30)\n"
		"  --connect-timeout SECS (default 10)\n"
		"  --retries N            retries per range or request (default 5)\n"
		"  --lock-timeout SECS    cache: wait this long for another process's download (default 3600)\n"
		"  --s3-endpoint URL      (AWS_ENDPOINT_URL)   --s3-region R (AWS_REGION)\n"
		"  --gcs-endpoint URL     (STORAGE_EMULATOR_HOST)\n"
		"  --hf-endpoint URL      (HF_ENDPOINT)\n"
		"  --staging-dir DIR      pull to a bucket: local staging folder (default $TMPDIR or /tmp)\n"
		"  --progress | --no-progress | --quiet\n"
		"environment: HF_TOKEN, HF_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,\n"
		"  AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL, GCS_TOKEN, GOOGLE_OAUTH_ACCESS_TOKEN,\n"
		"  STORAGE_EMULATOR_HOST\n");
}

static int need(int i, int argc, const char *opt)
{
	if (i + 1 >= argc) {
		fprintf(stderr, "infergate-weights: %s needs a value\n", opt);
		return 0;
	}
	return 1;
}

static int int_opt(const char *v, const char *opt, int min, int max, int *out)
{
	int64_t x;
	if (parse_int64(v, min, max, &x)) {
		fprintf(stderr, "infergate-weights: %s wants an integer in [%d, %d], not %s\n", opt, min, max, v);
		return -1;
	}
	*out = (int)x;
	return 0;
}

static int size_opt(const char *v, const char *opt, uint64_t *out)
{
	if (parse_size_bytes(v, out)) {
		fprintf(stderr, "infergate-weights: %s wants a size such as 16MiB or 100G, not %s\n", opt, v);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	log_init("infergate-weights");
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	const char *cmd = argv[1];
	weights_opts o;
	weights_opts_default(&o);
	const char *pos[2] = {NULL, NULL};
	int npos = 0, offline = 0, foreground = 0, ttl_s = 3600, chunk_given = 0, passthrough_off = 0;
	const char *cache_dir = NULL;
	uint64_t capacity = 0;
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		if (a[0] != '-' || a[1] != '-') {
			if (npos == 2) {
				fprintf(stderr, "infergate-weights: unexpected argument %s\n", a);
				return 2;
			}
			pos[npos++] = a;
			continue;
		}
		if (!strcmp(a, "--offline")) {
			offline = 1;
			continue;
		}
		if (!strcmp(a, "--foreground") || !strcmp(a, "-f")) {
			foreground = 1;
			continue;
		}
		if (!strcmp(a, "--quiet")) {
			o.quiet = 1;
			continue;
		}
		if (!strcmp(a, "--progress")) {
			o.progress = 1;
			continue;
		}
		if (!strcmp(a, "--no-progress")) {
			o.progress = 0;
			continue;
		}
		if (!strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		}
		if (!need(i, argc, a)) return 2;
		const char *v = argv[++i];
		int bad = 0;
		if (!strcmp(a, "--connections")) bad = int_opt(v, a, 1, 64, &o.connections);
		else if (!strcmp(a, "--chunk-size")) {
			chunk_given = 1;
			bad = size_opt(v, a, &o.chunk_bytes);
			if (!bad && o.chunk_bytes < 4096) {
				fprintf(stderr, "infergate-weights: --chunk-size is at least 4KiB\n");
				bad = 1;
			}
		} else if (!strcmp(a, "--stall-timeout")) bad = int_opt(v, a, 1, 3600, &o.stall_timeout_s);
		else if (!strcmp(a, "--connect-timeout")) bad = int_opt(v, a, 1, 600, &o.connect_timeout_s);
		else if (!strcmp(a, "--request-timeout")) bad = int_opt(v, a, 1, 86400, &o.request_timeout_s);
		else if (!strcmp(a, "--retries")) bad = int_opt(v, a, 0, 100, &o.retries);
		else if (!strcmp(a, "--lock-timeout")) bad = int_opt(v, a, 0, 86400, &o.lock_timeout_s);
		else if (!strcmp(a, "--metadata-ttl")) bad = int_opt(v, a, 0, 86400 * 365, &ttl_s);
		else if (!strcmp(a, "--passthrough")) {
			if (!strcmp(v, "auto")) passthrough_off = 0;
			else if (!strcmp(v, "off")) passthrough_off = 1;
			else {
				fprintf(stderr, "infergate-weights: --passthrough is auto or off\n");
				bad = 1;
			}
		} else if (!strcmp(a, "--s3-endpoint")) o.s3_endpoint = v;
		else if (!strcmp(a, "--s3-region")) o.s3_region = v;
		else if (!strcmp(a, "--gcs-endpoint")) o.gcs_endpoint = v;
		else if (!strcmp(a, "--hf-endpoint")) o.hf_endpoint = v;
		else if (!strcmp(a, "--staging-dir")) o.staging_dir = v;
		else if (!strcmp(a, "--cache-dir")) cache_dir = v;
		else if (!strcmp(a, "--capacity") || !strcmp(a, "--cache-capacity")) bad = size_opt(v, a, &capacity);
		else {
			fprintf(stderr, "infergate-weights: unknown option %s\n", a);
			usage(stderr);
			return 2;
		}
		if (bad) return 2;
	}
	char err[2048] = "";
	xfer_global_init();
	if (!strcmp(cmd, "pull")) {
		if (npos != 2) {
			fprintf(stderr, "infergate-weights: pull wants SOURCE DEST\n");
			return 2;
		}
		pull_stats st;
		if (weights_pull(pos[0], pos[1], &o, &st, err, sizeof err)) {
			fprintf(stderr, "infergate-weights: pull failed: %s\n", err);
			return 1;
		}
		return 0;
	}
	if (!strcmp(cmd, "ls")) {
		if (npos != 1) {
			fprintf(stderr, "infergate-weights: ls wants SOURCE\n");
			return 2;
		}
		wsrc *s = wsrc_new(pos[0], &o, err, sizeof err);
		wlist l;
		if (!s || wsrc_list(s, &l, err, sizeof err)) {
			fprintf(stderr, "infergate-weights: %s\n", err);
			wsrc_free(s);
			return 1;
		}
		if (l.revision[0]) printf("# revision %s\n", l.revision);
		for (size_t i = 0; i < l.n; i++)
			printf("%12llu  %-64s  %s\n", (unsigned long long)l.files[i].size,
			       l.files[i].sha256[0] ? l.files[i].sha256 : l.files[i].md5[0] ? l.files[i].md5
											    : "-",
			       l.files[i].path);
		wlist_free(&l);
		wsrc_free(s);
		return 0;
	}
	if (!strcmp(cmd, "cache")) {
		if (npos != 1 || !cache_dir) {
			fprintf(stderr, "infergate-weights: cache wants SOURCE --cache-dir DIR\n");
			return 2;
		}
		weights_cache *c = NULL;
		if (weights_cache_open(pos[0], cache_dir, capacity, offline, &o, &c, err, sizeof err)) {
			fprintf(stderr, "infergate-weights: cache failed: %s\n", err);
			return 1;
		}
		printf("%s\n", weights_cache_path(c));
		weights_cache_close(c);
		return 0;
	}
	if (!strcmp(cmd, "mount")) {
		if (npos != 2 || !cache_dir) {
			fprintf(stderr, "infergate-weights: mount wants SOURCE MOUNTPOINT --cache-dir DIR\n");
			return 2;
		}
		mount_opts mo = {.source = pos[0], .mountpoint = pos[1], .cache_dir = cache_dir, .capacity_bytes = capacity, .foreground = foreground, .metadata_ttl_s = ttl_s, .o = &o, .chunk_bytes = chunk_given ? o.chunk_bytes : 0, .passthrough_off = passthrough_off};
		if (weights_mount_run(&mo, err, sizeof err)) {
			fprintf(stderr, "infergate-weights: mount failed: %s\n", err);
			return 1;
		}
		return 0;
	}
	fprintf(stderr, "infergate-weights: unknown command %s\n", cmd);
	usage(stderr);
	return 2;
}
