/*
 * main.c — infergate-lab: the two-region lab and its failover drill.
 *
 *   infergate-lab up [flags]      build the lab (namespaces or loopback), start everything
 *   infergate-lab status          topology, processes, and each gateway's view of its pool
 *   infergate-lab drill [flags]   the failover drill against the lab (or a real deployment)
 *   infergate-lab down            remove everything, also after a crash; safe to repeat
 *   infergate-lab demo [flags]    up + drill + down with the bundled test model
 *   infergate-lab relay ...       the delaying relay (started by up)
 *
 * The state folder is --state DIR, else $INFERGATE_LAB_STATE, else ./lab-state.
 * See docs/lab.md.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "lab/lab.h"

/* The demo's servers run this many sequences at once (--max-num-seqs). */
#define DEMO_MAX_NUM_SEQS 4

static void usage(void)
{
	fprintf(stderr,
		"usage: infergate-lab COMMAND [flags]\n"
		"  up       [--servers-per-region N] [--model DIR | --shape tiny|270m|1b] [--sim]\n"
		"           [--loopback] [--threads N] [--max-num-seqs N] [--delay-ms D] [--latency auto|netem|relay]\n"
		"           [--name ID] [--ready-timeout SECONDS]\n"
		"  status\n"
		"  drill    [drill flags: infergate-lab drill --help]\n"
		"  down\n"
		"  demo     [up flags] [drill flags]: up, drill, down\n"
		"  relay    --delay-ms D --map LISTEN=TARGET ... (started by up)\n"
		"every command: --state DIR (default $INFERGATE_LAB_STATE or ./lab-state)\n"
		"See docs/lab.md.\n");
}

/* Takes the up flags out of argv (keeping the others in order in rest).
 * Returns 0, or -1 on a bad value. */
static int parse_up_flags(int argc, char **argv, lab_up_opts *o, const char **state, char **rest, int *n_rest)
{
	*n_rest = 0;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		int64_t n;
		if (!strcmp(a, "--state") && v) {
			*state = v;
			i++;
		} else if (!strcmp(a, "--servers-per-region") && v) {
			if (parse_int64(v, 1, LAB_MAX_SERVERS, &n) < 0) {
				fprintf(stderr, "lab: --servers-per-region 1..%d\n", LAB_MAX_SERVERS);
				return -1;
			}
			o->servers_per_region = (int)n;
			i++;
		} else if (!strcmp(a, "--model") && v) {
			o->model_dir = v;
			i++;
		} else if (!strcmp(a, "--shape") && v) {
			if (strcmp(v, "tiny") && strcmp(v, "270m") && strcmp(v, "1b")) {
				fprintf(stderr, "lab: --shape tiny|270m|1b\n");
				return -1;
			}
			o->shape = v;
			i++;
		} else if (!strcmp(a, "--sim")) o->sim = 1;
		else if (!strcmp(a, "--loopback")) o->loopback = 1;
		else if (!strcmp(a, "--max-num-seqs") && v) {
			if (parse_int64(v, 1, 4096, &n) < 0) {
				fprintf(stderr, "lab: --max-num-seqs 1..4096\n");
				return -1;
			}
			o->max_num_seqs = (int)n;
			i++;
		} else if (!strcmp(a, "--threads") && v) {
			if (parse_int64(v, 1, 256, &n) < 0) {
				fprintf(stderr, "lab: --threads 1..256\n");
				return -1;
			}
			o->threads = (int)n;
			i++;
		} else if (!strcmp(a, "--delay-ms") && v) {
			o->delay_ms = atof(v);
			if (o->delay_ms <= 0 || o->delay_ms > 5000) {
				fprintf(stderr, "lab: --delay-ms in (0, 5000]\n");
				return -1;
			}
			i++;
		} else if (!strcmp(a, "--latency") && v) {
			if (strcmp(v, "auto") && strcmp(v, "netem") && strcmp(v, "relay")) {
				fprintf(stderr, "lab: --latency auto|netem|relay\n");
				return -1;
			}
			o->latency = v;
			i++;
		} else if (!strcmp(a, "--name") && v) {
			if (strlen(v) > 16 || strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(v)) {
				fprintf(stderr, "lab: --name: up to 16 of a-z 0-9 -\n");
				return -1;
			}
			o->id = v;
			i++;
		} else if (!strcmp(a, "--ready-timeout") && v) {
			uint64_t ms;
			if (parse_duration_ms(v, 1000, &ms) < 0) {
				fprintf(stderr, "lab: bad --ready-timeout\n");
				return -1;
			}
			o->ready_timeout_ms = ms;
			i++;
		} else rest[(*n_rest)++] = argv[i];
	}
	rest[*n_rest] = NULL;
	return 0;
}

static int cmd_up(int argc, char **argv, int demo)
{
	lab_up_opts o = {0};
	const char *state = NULL;
	char **rest = calloc((size_t)argc + 2, sizeof *rest);
	int n_rest = 0;
	if (!rest || parse_up_flags(argc, argv, &o, &state, rest + 1, &n_rest) < 0) {
		free(rest);
		return 2;
	}
	if (!demo && n_rest) {
		fprintf(stderr, "lab: up: unknown argument %s\n", rest[1]);
		free(rest);
		usage();
		return 2;
	}
	char dir[LAB_PATH_LEN];
	lab_state_dir_default(dir, sizeof dir, state);
	static lab_state s;
	lab_state_init(&s, dir);
	if (demo && !o.shape && !o.model_dir) o.shape = "270m";
	if (demo && !o.threads) o.threads = 1;
	if (demo && !o.max_num_seqs) o.max_num_seqs = DEMO_MAX_NUM_SEQS;
	uint64_t t0 = time_mono_ms();
	int rc = lab_up(&s, &o);
	if (!demo) {
		lab_state_free(&s);
		free(rest);
		return rc;
	}
	uint64_t t_up = time_mono_ms();
	if (rc == 0) {
		/* Demo defaults sized for a 2-core machine and one server thread
		 * per region running DEMO_MAX_NUM_SEQS sequences: a steady stream
		 * that keeps the serving region busy (~4 requests of ~1 s each in
		 * flight: its batch full, little queue), an in-flight cap of both
		 * regions' batches so an outage's queue shows as skipped arrivals
		 * (counted, in the report) rather than unbounded; the reference's
		 * 100-token questions (docs/lab.md, "make demo"). Flags given
		 * after `demo` come later and win. */
		static char *dflt[] = {"drill", "--rate", "4", "--max-tokens", "8", "--question-max-tokens", "100",
				       "--baseline", "3", "--outage", "5", "--max-inflight", "8", "--strict-streams"};
		size_t nd = ARRAY_LEN(dflt);
		char **dargv = calloc(nd + (size_t)n_rest + 1, sizeof *dargv);
		if (!dargv) {
			free(rest);
			lab_state_free(&s);
			return 1;
		}
		memcpy(dargv, dflt, sizeof dflt);
		memcpy(dargv + nd, rest + 1, (size_t)n_rest * sizeof *dargv);
		rc = drill_main((int)nd + n_rest, dargv, &s);
		free(dargv);
	}
	lab_state_free(&s);
	printf("\n");
	uint64_t t_drill = time_mono_ms();
	int drc = lab_down(dir, 0);
	uint64_t t_end = time_mono_ms();
	printf("demo: up %.1f s, drill %.1f s, down %.1f s: %.1f s in all (%s)\n", (double)(t_up - t0) / 1000.0,
	       (double)(t_drill - t_up) / 1000.0, (double)(t_end - t_drill) / 1000.0, (double)(t_end - t0) / 1000.0,
	       rc ? "FAILED" : drc ? "passed, but down failed"
				   : "passed");
	free(rest);
	return rc ? rc : (drc ? 1 : 0);
}

int main(int argc, char **argv)
{
	log_init("infergate-lab");
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2) {
		usage();
		return 2;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
		usage();
		return 0;
	}
	if (!strcmp(cmd, "relay")) return relay_main(argc - 1, argv + 1);
	if (!strcmp(cmd, "up")) return cmd_up(argc - 2, argv + 2, 0);
	if (!strcmp(cmd, "demo")) return cmd_up(argc - 2, argv + 2, 1);
	const char *state = NULL;
	if (!strcmp(cmd, "drill")) {
		for (int i = 2; i + 1 < argc; i++)
			if (!strcmp(argv[i], "--state")) state = argv[i + 1];
		return drill_main(argc - 1, argv + 1, NULL);
	}
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--state") && i + 1 < argc) {
			state = argv[++i];
			continue;
		}
		fprintf(stderr, "lab: %s: unknown argument %s\n", cmd, argv[i]);
		return 2;
	}
	char dir[LAB_PATH_LEN];
	lab_state_dir_default(dir, sizeof dir, state);
	if (!strcmp(cmd, "down")) return lab_down(dir, 0) == 0 ? 0 : 1;
	if (!strcmp(cmd, "status")) return lab_status(dir);
	fprintf(stderr, "lab: unknown command %s\n", cmd);
	usage();
	return 2;
}
