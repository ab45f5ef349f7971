/*
 * sim_fault.h — the faults the simulator can be told to show, set by flags
 * at boot and through POST/GET/DELETE /sim/faults at run time.
 *
 * One struct holds the current faults; the JSON object that sets them uses
 * the same key names as GET shows (see docs/sim.md). A POST merges: keys it
 * names change, the others stay; null turns a fault off. An update is checked
 * whole before anything changes, so a bad body leaves the faults as they were.
 * Decisions that consume a budget (error_count, close_count) are made here;
 * acting on them (closing sockets, stalling) is the server's job.
 */
#ifndef SIM_FAULT_H
#define SIM_FAULT_H

#include <stddef.h>
#include <stdint.h>
#include "core/json.h"

enum sim_hang { SIM_HANG_OFF = 0,
		SIM_HANG_REQUEST,
		SIM_HANG_HEAD };

/* Owner: the server (one per process). Off values as noted. */
typedef struct sim_faults {
	int health_fail;            /* /health answers 503 */
	int error_status;           /* status answered to completions; 0 = off */
	double error_rate;          /* chance per request, (0,1]; default 1 */
	int64_t error_count;        /* only the next N requests; 0 = no limit */
	int refuse;                 /* listening socket closed: connect is refused */
	int64_t refuse_ms;          /* then re-opened after this long; 0 = until cleared */
	int hang;                   /* enum sim_hang */
	char hang_path[128];        /* path prefix it applies to; "" = all but /sim/ */
	int64_t close_after_chunks; /* streams closed after N data events; -1 = off */
	int64_t close_count;        /* only the next N streams; 0 = no limit */
	double slow_factor;         /* latency multiplier; 1 = off */
	double kv_usage;            /* reported kv_cache_usage_perc; < 0 = honest */
	int64_t waiting;            /* reported num_requests_waiting; < 0 = honest */
	int64_t die_after_requests; /* the process dies after N more completions; 0 = off */
	int metrics_garbage;        /* /metrics answers text that is not Prometheus */
	uint64_t rng;               /* state of the error_rate draw */
} sim_faults;

/* Every fault off. */
void sim_faults_clear(sim_faults *f);
/* Applies a JSON object of fault keys (see the header comment). Returns 0, or
 * -1 with a message in err naming the key; f is then unchanged. */
int sim_faults_apply(sim_faults *f, const json_val *obj, char *err, size_t err_len);
/* Writes the current faults as one JSON object (every key, off ones as null
 * or false), plus "region" when region is not NULL. */
void sim_faults_write(const sim_faults *f, json_w *w, const char *region);
/* Whether this completion request must get the error status; consumes
 * error_count. Returns the status, or 0. */
int sim_faults_take_error(sim_faults *f);
/* Whether a stream starting now must be cut; returns the data events to send
 * before closing, or -1. Consumes close_count. */
int64_t sim_faults_take_close(sim_faults *f);
/* Whether a request on `path` must hang; returns enum sim_hang. */
int sim_faults_hang_for(const sim_faults *f, const char *path);

/* Fault keys for command-line flags: "--" + key with '_' as '-'. kind is 'b'
 * (a switch, no argument), 'n' (number), 's' (string). NULL-terminated. */
typedef struct sim_fault_key {
	const char *key;
	char kind;
	const char *help;
} sim_fault_key;
extern const sim_fault_key sim_fault_keys[];

#endif
