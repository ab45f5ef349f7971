/*
 * lab.h — the two-region lab and its failover drill: what every file of
 * src/lab shares.
 *
 *   main.c          commands and flags: up, down, status, drill, demo, relay
 *   lab_state.c     the lab's state folder: state.json (topology, pids), pid files
 *   lab_sys.c       processes: spawn (into a network namespace), run, kill, /proc scans
 *   lab_net.c       namespaces, veth links, the bridge per region, netem probe
 *   lab_up.c        up, down and status: bucket, model, relays, servers, gateways
 *   relay.c         the delaying TCP relay on the event loop (latency without netem)
 *   drill.c         the failover drill: phases, outages, the steady client stream
 *   drill_report.c  the drill's phase table, JSON report and SVG timeline
 *
 * A lab is a value (lab_state) written to STATE/state.json after every step
 * of `up`, so `down` can undo a lab whose `up` was killed half-way. Every
 * process the lab starts carries INFERGATE_LAB_ID=<id> in its environment and
 * every namespace is named <id>-..., which is how `down` finds what a state
 * file does not name.
 *
 * Not here: the gateway, the server, the weights (the lab runs their programs).
 */
#ifndef LAB_LAB_H
#define LAB_LAB_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Messages and paths here are built into fixed buffers sized for the lab's
 * own names; a message cut short is acceptable, so GCC's guesses about
 * truncation (with PATH-sized inputs) are not errors in src/lab. */
#pragma GCC diagnostic ignored "-Wformat-truncation"

#define LAB_REGIONS 2
#define LAB_MAX_SERVERS 8 /* per region */
#define LAB_MAX_NODES 48
#define LAB_MAX_ARGS 40
#define LAB_MAX_NETNS 24
#define LAB_ID_LEN 24
#define LAB_NAME_LEN 64
#define LAB_ADDR_LEN 64
#define LAB_PATH_LEN 512

/* Ports inside the namespaces (each component has its own address there). */
#define LAB_SERVER_PORT 8000
#define LAB_GATEWAY_PORT 8080
#define LAB_BUCKET_PORT 8081
#define LAB_RELAY_PORT0 9000

extern const char *const lab_region_names[LAB_REGIONS]; /* "us-east5", "europe-west4" */
extern const char *const lab_region_short[LAB_REGIONS]; /* "us", "eu" */

/* One process the lab runs. argv is kept so the drill can start a server again. */
typedef struct lab_node {
	char name[LAB_NAME_LEN];      /* "us-east5-server-1", "bucket", "relay", "europe-west4-gateway" */
	char role[16];                /* bucket | server | gateway | relay */
	int region;                   /* index into lab_region_names, -1 for none */
	char netns[LAB_NAME_LEN];     /* "" = the lab's own namespace */
	char addr[LAB_ADDR_LEN];      /* host:port it listens on */
	char link[16];                /* server: its bridge port in the region namespace */
	pid_t pid;                    /* 0 = not running */
	char *argv[LAB_MAX_ARGS + 1]; /* owned strings, NULL-terminated */
} lab_node;

/* The whole lab. Owner: the command that loaded or built it; lab_state_free. */
typedef struct lab_state {
	char dir[LAB_PATH_LEN]; /* absolute state folder */
	char bin[LAB_PATH_LEN]; /* folder of the infergate programs */
	char id[LAB_ID_LEN];    /* "igl-1234": namespace prefix, INFERGATE_LAB_ID */
	int netns;              /* 1: namespaces; 0: loopback */
	int netem;              /* 1: tc netem delays the backbone; 0: the relay does */
	int sim;                /* 1: infergate-sim stands in for the servers */
	int complete;           /* 1 once `up` finished */
	double delay_ms;        /* one-way delay between the regions */
	int servers_per_region;
	int port_base;                /* loopback mode: first port */
	char shape[16];               /* tiny | 270m | 1b | "" (a given --model) */
	char model_dir[LAB_PATH_LEN]; /* --model DIR, or "" */
	char model_name[128];         /* served model name */
	char bucket_url[256];         /* http://host:port/models/NAME/ */
	char gateway[LAB_REGIONS][LAB_ADDR_LEN];
	char region_ns[LAB_REGIONS][LAB_NAME_LEN]; /* region namespaces ("" on loopback) */
	char client_ns[LAB_NAME_LEN];              /* where the drill's client runs */
	char probe_ns[LAB_NAME_LEN];               /* a namespace that reaches every address */
	char netns_list[LAB_MAX_NETNS][LAB_NAME_LEN];
	size_t n_netns;
	lab_node nodes[LAB_MAX_NODES];
	size_t n_nodes;
	uint64_t up_ms; /* how long `up` took */
} lab_state;

/* ---- lab_state.c */
/* The state folder: flag, else $INFERGATE_LAB_STATE, else ./lab-state; made absolute. */
void lab_state_dir_default(char *out, size_t len, const char *flag);
void lab_state_init(lab_state *s, const char *dir);
void lab_state_free(lab_state *s);
/* Writes STATE/state.json atomically (temporary name, rename). 0 or -1. */
int lab_state_save(const lab_state *s);
/* Reads STATE/state.json into s (initialised by the caller). 0, or -1 with a reason. */
int lab_state_load(lab_state *s, char *err, size_t err_len);
lab_node *lab_node_add(lab_state *s, const char *name, const char *role, int region);
lab_node *lab_node_find(lab_state *s, const char *name);
/* Replaces n's argv with a copy of argv (NULL-terminated). */
void lab_node_set_argv(lab_node *n, const char *const *argv);
/* STATE/sub/name into out. */
void lab_path(const lab_state *s, char *out, size_t len, const char *sub, const char *name);
/* Makes every folder of path (mkdir -p). 0 or -1. */
int lab_mkdirs(const char *path);
/* Removes a tree (rm -rf); 0 or -1. */
int lab_rmtree(const char *path);

/* ---- lab_sys.c */
/* Starts argv as a daemon: own session, stdout+stderr appended to log_path,
 * INFERGATE_LAB_ID=id in its environment, inside network namespace netns when
 * not "" or NULL. Returns the pid, or -1 with a reason in err. */
pid_t lab_spawn(const char *const *argv, const char *netns, const char *log_path, const char *id,
		char *err, size_t err_len);
/* Runs argv and waits at most timeout_ms; output to log_path (NULL: /dev/null).
 * Returns the exit status (0..255), or -1 when it could not run or timed out (killed). */
int lab_run(const char *const *argv, const char *log_path, uint64_t timeout_ms);
/* lab_run of "sh -c cmd". */
int lab_run_sh(const char *cmd, const char *log_path, uint64_t timeout_ms);
/* Enters the network namespace /run/netns/name (this thread). 0 or -1. */
int lab_enter_netns(const char *name);
/* 1 while pid exists and is not a zombie. Reaps it when it is our child. */
int lab_pid_alive(pid_t pid);
/* Reaps every exited child of this process (never blocks). */
void lab_reap(void);
/* Pids of processes whose environment holds INFERGATE_LAB_ID=id (not this one). */
size_t lab_pids_by_id(const char *id, pid_t *out, size_t max);
/* Pids in a network namespace (`ip netns pids`). */
size_t lab_pids_in_netns(const char *ns, pid_t *out, size_t max);
/* The folder this program runs from (for sibling programs). */
void lab_exe_dir(char *out, size_t len);
/* 1 when the process may create network namespaces here. */
int lab_can_netns(void);

/* ---- lab_net.c */
/* Builds the namespaces and links of s (netns mode). 0, or -1 with a reason. */
int lab_net_up(lab_state *s, char *err, size_t err_len);
/* Deletes every namespace named <id>-* (and what lives in it). Returns how many. */
int lab_net_down(const char *id);
/* Cuts (0) or restores (1) a server's link. 0 or -1. */
int lab_net_link(const lab_state *s, const lab_node *server, int up);
/* 1 when `tc qdisc ... netem` works in a scratch namespace. */
int lab_net_has_netem(const char *id);

/* ---- lab_up.c */
typedef struct lab_up_opts {
	int servers_per_region; /* default 1 */
	const char *model_dir;  /* NULL: make one */
	const char *shape;      /* default "270m" */
	int sim;
	int loopback;              /* force loopback mode */
	int threads;               /* server --threads (default 1) */
	int max_num_seqs;          /* server (and sim) --max-num-seqs; 0: theirs (64, 256) */
	double delay_ms;           /* one-way, default 22.5 */
	const char *latency;       /* "auto" | "netem" | "relay" */
	const char *id;            /* NULL: igl-<pid> */
	uint64_t ready_timeout_ms; /* servers ready within (default 300 s) */
	int quiet;
} lab_up_opts;
int lab_up(lab_state *s, const lab_up_opts *o);
/* Removes everything of the lab in state folder dir. Returns 0 (also when
 * there was nothing), -1 when something could not be removed. */
int lab_down(const char *dir, int quiet);
int lab_status(const char *dir);
/* Starts node n (again) and records its pid in the state. 0 or -1. */
int lab_start_node(lab_state *s, lab_node *n, char *err, size_t err_len);
/* Waits until GET http://addr/health answers 200; 0, or -1 after timeout_ms. */
int lab_wait_healthy(const char *addr, uint64_t timeout_ms);
/* Waits until the gateway's GET /status shows every endpoint of every pool
 * "up"; 0, or -1 after timeout_ms. Blocks (use before traffic starts). */
int lab_wait_gateway_all_up(const char *addr, uint64_t timeout_ms);

/* ---- relay.c: `infergate-lab relay --delay-ms D --map LISTEN=TARGET ...` */
int relay_main(int argc, char **argv);

/* ---- drill.c */
int drill_main(int argc, char **argv, lab_state *lab_or_null);
void drill_usage(void);

#endif
