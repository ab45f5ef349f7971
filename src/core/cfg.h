/*
 * cfg.h — YAML configuration files, read into the same tree as JSON, and the
 * strict-validation helpers every program uses on it.
 *
 * Loading (libyaml): mappings become objects, sequences arrays, scalars strings,
 * except plain (unquoted, untagged) scalars typed by the YAML 1.2 core schema:
 * null ~ (empty) -> null; true/false (True, TRUE...) -> booleans; 12, -3, 0x1F,
 * 0o17 -> integers; 1.5, 1e3, .inf, .nan -> numbers. Quoted scalars are always
 * strings. Every value carries the line and column of its YAML node. Refused,
 * with an error naming file:line:col: anchors and aliases (no alias bombs), a
 * second document, duplicate keys, non-scalar keys, nesting over 64 levels,
 * tags other than the core ones (!!str, !!int, !!float, !!bool, !!null, !!map,
 * !!seq). An empty file is an empty mapping.
 *
 * Validation: a cfg_ctx collects the first error as "file:line: path: what"
 * (and counts the others), so a program checks its whole configuration, then
 * prints one clear line. Paths read like "pools[0].health.interval".
 */
#ifndef CORE_CFG_H
#define CORE_CFG_H

#include <stddef.h>
#include <stdint.h>
#include "core/json.h"

#define CFG_MAX_DEPTH 64

/* Reads at most max_bytes of the file at path (0 = 16 MiB) and loads it. Returns
 * the document, or NULL with "path:line:col: what" in err. */
json_doc *cfg_load_yaml(const char *path, size_t max_bytes, char *err, size_t errlen);
/* The same from memory; name stands for the file in messages. */
json_doc *cfg_load_yaml_text(const char *text, size_t len, const char *name, char *err, size_t errlen);

typedef struct cfg_ctx {
	const char *file; /* named in messages */
	char err[512];    /* the first error */
	int failed;       /* number of errors */
} cfg_ctx;

void cfg_ctx_init(cfg_ctx *c, const char *file);
/* Records an error at v's line (or without a line when v is NULL). */
void cfg_fail(cfg_ctx *c, const json_val *at, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Paths for messages: "parent.key" (or "key" at the top) and "parent[i]". */
void cfg_path(char *out, size_t size, const char *parent, const char *key);
void cfg_path_index(char *out, size_t size, const char *parent, size_t i);

/* obj must be a mapping whose keys are all in allowed (NULL-terminated). Returns
 * 0, or -1 after reporting the first unknown key and the allowed ones. path is
 * obj's own path ("" at the top). */
int cfg_check_keys(cfg_ctx *c, const json_val *obj, const char *path, const char *const allowed[]);

/*
 * Typed getters of obj[key]. path is obj's path; messages name path.key. A key
 * that is absent, or present with a null value, is "absent": required -> error,
 * otherwise *out = the default. Return 1 when the value was present and good, 0
 * when absent (default stored), -1 on error (reported; *out untouched).
 */
int cfg_str(cfg_ctx *c, const json_val *obj, const char *path, const char *key,
	    int required, const char *dflt, const char **out);
int cfg_bool(cfg_ctx *c, const json_val *obj, const char *path, const char *key,
	     int required, int dflt, int *out);
int cfg_int(cfg_ctx *c, const json_val *obj, const char *path, const char *key,
	    int required, int64_t dflt, int64_t min, int64_t max, int64_t *out);
int cfg_double(cfg_ctx *c, const json_val *obj, const char *path, const char *key,
	       int required, double dflt, double min, double max, double *out);
/* "100ms", "2s", "5m", "1h", "250us", or a bare number of seconds. */
int cfg_duration_ms(cfg_ctx *c, const json_val *obj, const char *path, const char *key,
		    int required, uint64_t dflt_ms, uint64_t min_ms, uint64_t max_ms, uint64_t *out_ms);
/* "64KiB", "10MB", "2GiB", or a bare number of bytes. */
int cfg_size_bytes(cfg_ctx *c, const json_val *obj, const char *path, const char *key,
		   int required, uint64_t dflt, uint64_t min, uint64_t max, uint64_t *out);
/* One of names (NULL-terminated); *out is its index. */
int cfg_enum(cfg_ctx *c, const json_val *obj, const char *path, const char *key,
	     int required, int dflt, const char *const names[], int *out);
/* "host:port", "[v6addr]:port"; host copied without brackets into host[hostlen].
 * port in 1..65535 (0 also when allow_port0). */
int cfg_hostport(cfg_ctx *c, const json_val *obj, const char *path, const char *key,
		 int required, const char *dflt, int allow_port0, char *host, size_t hostlen, uint16_t *port);
/* A mapping or a sequence: returns it, or NULL when absent (error if required)
 * or of the wrong type (error). */
const json_val *cfg_obj(cfg_ctx *c, const json_val *obj, const char *path, const char *key, int required);
const json_val *cfg_arr(cfg_ctx *c, const json_val *obj, const char *path, const char *key, int required);

/* The same checks on a bare string, for flags: "host:port" -> 0 or -1. */
int cfg_parse_hostport(const char *s, int allow_port0, char *host, size_t hostlen, uint16_t *port);

#endif
