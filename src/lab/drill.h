/*
 * drill.h — the failover drill's records and results, shared by drill.c (which
 * runs it) and drill_report.c (which prints the table, the JSON and the SVG).
 *
 * Every request the drill sends is one drill_rec, kept until the report; a
 * phase is an interval of the drill's clock, and a request belongs to the
 * phase in which it started. Times are milliseconds since the drill started.
 */
#ifndef LAB_DRILL_H
#define LAB_DRILL_H

#include <stddef.h>
#include <stdint.h>

#define DRILL_MAX_RECS 50000
#define DRILL_MAX_PHASES 32
#define DRILL_MAX_FLAVOURS 8

enum drill_kind { DRILL_STEADY = 0,
		  DRILL_QUESTION,
		  DRILL_VERIFY };
enum drill_outcome { DRILL_PENDING = 0,
		     DRILL_OK,
		     DRILL_FAILED,
		     DRILL_BROKEN };

/* One request. region: 0 the client's region, 1 the other, 2 another name, -1 none. */
typedef struct drill_rec {
	uint8_t kind, stream, via, outcome;
	int16_t phase;
	int16_t region;
	int status;
	int err; /* hc_err */
	double t_start_ms, t_head_ms, t_end_ms;
	char endpoint[48];
	char detail[80]; /* why it failed, or the answer's start */
} drill_rec;

enum drill_phase_kind { PH_VERIFY = 0,
			PH_BASELINE,
			PH_OUTAGE,
			PH_RESTORE,
			PH_CHECK,
			PH_CLEANUP };

typedef struct drill_phase {
	char name[48];
	int kind;    /* enum drill_phase_kind */
	int flavour; /* index into flavours, -1 none */
	double t_begin_ms, t_end_ms;
	size_t skipped; /* steady arrivals not sent: the in-flight cap was full */
} drill_phase;

/* One outage flavour's measurements; negative = not measured / not reached. */
typedef struct drill_flavour {
	char name[16]; /* graceful | crash | partition | custom */
	double t_outage_ms, t_restore_ms;
	double failover_ms; /* outage -> first head from the other region */
	double ready_ms;    /* restore -> the local servers' /health 200 */
	double back_ms;     /* restore -> first head from the local region */
	double drain_ms;    /* graceful: SIGTERM -> the servers exited */
	int question_rec;   /* the failover question, -1 none */
	int verify_local_rec, verify_remote_rec;
	int wrong_region;   /* local answers during the outage */
	int failed, broken; /* requests started in its phases */
} drill_flavour;

typedef struct drill_result {
	char local_region[64], remote_region[64];
	char gateway_local[64], gateway_remote[64];
	char mode[64]; /* "lab netns", "lab loopback", "external" */
	char backend[32];
	double rate;
	int max_tokens_steady, max_tokens_question;
	int strict_streams;
	drill_rec *recs;
	size_t n_recs;
	drill_phase phases[DRILL_MAX_PHASES];
	size_t n_phases;
	drill_flavour fl[DRILL_MAX_FLAVOURS];
	size_t n_fl;
	int baseline_rec;
	double t_total_ms;
	size_t skipped;   /* steady arrivals not sent at the in-flight cap, all phases */
	int max_inflight; /* that cap */
	/* checks */
	char checks[32][160];
	int check_ok[32];
	size_t n_checks;
	int passed;
} drill_result;

/* drill_report.c */
void drill_report_table(const drill_result *r);
int drill_report_json(const drill_result *r, const char *path);
int drill_report_svg(const drill_result *r, const char *path);
/* Percentile p (0..100) of the latencies of requests in phase ph that ended
 * well (ok); -1 when none. */
double drill_phase_pct(const drill_result *r, int ph, double p);

#endif
