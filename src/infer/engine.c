/*
 * engine.c — the engine of engine.h: the Gemma 3 forward pass over a batch of
 * sequences, and the engine around it.
 *
 * Three parts, as in llama2.c: the model (read-only weights in the mappings,
 * model.h), the run state (every activation buffer, sized for the largest
 * step and allocated at load), and the step itself. A step flattens all
 * items' new tokens into rows; each layer runs every row through one matmul
 * per weight matrix (rows x weights, each weight row read once), then
 * attention per (row, head) against the paged cache. Work is split across the
 * thread team by output rows (matmuls) or by (row, head) pairs (attention).
 * Block-quantized weights (quant.h) take the input rows quantized to 8 bits
 * first (mm_dispatch); the KV cache holds bf16 (default) or f32.
 *
 * Per layer, for rows r at positions p_r (transformers' Gemma3DecoderLayer):
 *   xb = rmsnorm(x, input_norm); q, k, v = xb Wq, xb Wk, xb Wv
 *   q, k = rope(rmsnorm_per_head(q, q_norm)), rope(rmsnorm_per_head(k, k_norm))
 *   store k, v at p_r; att = softmax(q k^T / sqrt(query_pre_attn_scalar)) v
 *     over keys at positions (p_r - window, p_r] on sliding layers, [0, p_r] on full
 *   x += rmsnorm(att Wo, post_attn_norm)
 *   x += rmsnorm(down(gelu_tanh(xb Wgate) * xb Wup), post_ff_norm), xb = rmsnorm(x, pre_ff_norm)
 * then logits = rmsnorm(x, final_norm) E^T for the rows that need them.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/util.h"
#include "infer/engine.h"
#include "infer/kernels.h"
#include "infer/team.h"
#include "infer/quant.h"

enum { LOGIT_CHUNKS_PER_THREAD = 32 };
/* most rows of one sequence in an attention unit (attn_run) */
#ifndef ATTN_TILE_ROWS
#define ATTN_TILE_ROWS 4
#endif

/* Every buffer a step uses; owned by the engine, sized at load. */
typedef struct run_state {
	float *x;                              /* [rows][H] residual stream */
	float *xb;                             /* [rows][H] normed input of a sublayer */
	float *xb2;                            /* [rows][H] sublayer output */
	float *q;                              /* [rows][heads*D] */
	float *k, *v;                          /* [rows][kv*D] */
	float *att;                            /* [rows][heads*D] attention output */
	float *hb, *hb2;                       /* [rows][I] gate, up */
	float *rope;                           /* [rows][2 kinds][cos D/2 | sin D/2] */
	float *scores;                         /* [4 x threads][ATTN_TILE_ROWS][heads per kv head][max_model_len]: per chunk of a job */
	float *xl;                             /* [logit rows][H] final-normed rows */
	float *logits;                         /* [logit rows][V] */
	int *row_pos;                          /* [rows] */
	int *row_seq;                          /* [rows] the row's sequence (its block tables: kv_seq_layer_blocks) */
	int *tiles, n_tiles;                   /* [rows + 1] attention tiles: rows tiles[i] .. tiles[i + 1] - 1 */
	const int32_t **layer_blocks;          /* [rows] the row's block table for the current layer */
	int *logit_row;                        /* [logit rows] the row each logits row is computed from */
	float **logit_dst;                     /* [logit rows] where it goes (the item's buffer) */
	float *inv_freq_local, *inv_freq_full; /* [D/2] */
	/* activation rows quantized for block-type weights (quant.h): per 32
	 * elements for Q8_0/Q4_0, per 256 for the K types; [max(rows, logit rows)] */
	char *xq_small, *xq_super;
} run_state;

struct engine {
	model *m;
	const kernels *k;
	team *team;
	kv_cache *kv;
	engine_options opt;
	dtype kv_dtype; /* of the KV cache: DTYPE_BF16 or DTYPE_F32 */
	run_state s;
	/* the current step, read by the thread jobs */
	int n_rows, n_logits, layer;
	int norm_stage; /* what norm_run does: NORM_* */
	const engine_item *items;
	uint64_t output_ns_total; /* time in the output projection, over all steps */
};


/* ------------------------------------------------------------ small kernels */

/* out = x * rsqrt(mean(x^2) + eps) * w, where w already holds (1 + weight). */
static void rmsnorm(float *out, const float *x, const float *w, int n, float eps)
{
	/* four partial sums: one chain of dependent double adds was ~3% of a prefill */
	double s4[4] = {0, 0, 0, 0};
	int i = 0;
	for (; i + 4 <= n; i += 4)
		for (int l = 0; l < 4; l++) s4[l] += (double)x[i + l] * x[i + l];
	for (; i < n; i++) s4[0] += (double)x[i] * x[i];
	double ss = (s4[0] + s4[1]) + (s4[2] + s4[3]);
	float r = (float)(1.0 / sqrt(ss / n + eps));
	for (int i = 0; i < n; i++) out[i] = x[i] * r * w[i];
}

/* Rotate-half RoPE on one head of D: pairs (i, i + D/2). cs = [cos D/2 | sin D/2]. */
static void rope(float *h, const float *cs, int d)
{
	int half = d / 2;
	const float *c = cs, *s = cs + half;
	for (int i = 0; i < half; i++) {
		float a = h[i], b = h[i + half];
		h[i] = a * c[i] - b * s[i];
		h[i + half] = b * c[i] + a * s[i];
	}
}

/* ------------------------------------------------------------ thread jobs */

/* Up to three matmuls sharing one input, split by output rows. */
typedef struct mm_job {
	engine *e;
	const float *x;
	int n_rows, in;
	int n_mats;
	const tensor *w[3];
	float *out[3];
	int glu;       /* 1: out[0] = gelu(out[0]) * out[1] on each thread's columns */
	float softcap; /* >0: out[0] = softcap * tanh(out[0] / softcap) */
} mm_job;

static void mm_run(void *ctx, int t, int nt);

static int x_super(dtype t) { return t == DTYPE_Q4_K || t == DTYPE_Q6_K; }

/* Runs a matmul job (in n_chunks, 0 = the team's default). When a weight is
 * of a block type, the input rows are quantized first, here on the calling
 * thread: a row takes microseconds, less than waking the team for it costs
 * (an extra job per matmul made prefill slower on a busy machine). */
static void mm_dispatch(engine *e, mm_job *j, int n_chunks)
{
	run_state *s = &e->s;
	int small = 0, super = 0;
	for (int m = 0; m < j->n_mats; m++)
		if (dtype_is_quantized(j->w[m]->type)) *(x_super(j->w[m]->type) ? &super : &small) = 1;
	size_t ls = quant_x_row_bytes(DTYPE_Q8_0, (size_t)j->in), lk = quant_x_row_bytes(DTYPE_Q4_K, (size_t)j->in);
	for (int r = 0; r < j->n_rows && (small || super); r++) {
		const float *x = j->x + (size_t)r * j->in;
		if (small) e->k->quantize_x(DTYPE_Q8_0, s->xq_small + (size_t)r * ls, x, (size_t)j->in);
		if (super) e->k->quantize_x(DTYPE_Q4_K, s->xq_super + (size_t)r * lk, x, (size_t)j->in);
	}
	if (n_chunks > 0) team_run_chunks(e->team, mm_run, j, n_chunks);
	else team_run(e->team, mm_run, j);
}

static void mm_run(void *ctx, int t, int nt)
{
	mm_job *j = ctx;
	const kernels *k = j->e->k;
	int o0 = 0, o1 = 0;
	for (int m = 0; m < j->n_mats; m++) {
		const tensor *w = j->w[m];
		team_split(w->rows, t, nt, 16, &o0, &o1);
		if (o0 >= o1) continue;
		if (dtype_is_quantized(w->type)) {
			int sup = x_super(w->type);
			k->matmul_q(j->out[m], (size_t)w->rows, sup ? j->e->s.xq_super : j->e->s.xq_small,
				    quant_x_row_bytes(w->type, (size_t)j->in), j->n_rows, w->data, w->type, w->cols, o0, o1);
		} else {
			k->matmul(j->out[m], (size_t)w->rows, j->x, (size_t)j->in, j->n_rows, w->data, w->type, w->cols, o0, o1);
		}
	}
	if (j->glu && o0 < o1) {
		int n = j->w[0]->rows;
		for (int r = 0; r < j->n_rows; r++)
			k->gelu_mul(j->out[0] + (size_t)r * n + o0, j->out[1] + (size_t)r * n + o0, o1 - o0);
	}
	if (j->softcap > 0) {
		int n = j->w[0]->rows;
		for (int r = 0; r < j->n_rows; r++) {
			float *g = j->out[0] + (size_t)r * n;
			for (int o = o0; o < o1; o++) g[o] = j->softcap * tanhf(g[o] / j->softcap);
		}
	}
}

/* The row-wise norms and residual adds between the matmuls, split by rows:
 * NORM_INPUT xb = rmsnorm(x); NORM_ATTN x += rmsnorm(xb2), xb = rmsnorm(x);
 * NORM_FF x += rmsnorm(xb2). Each row is computed as on one thread. */
enum { NORM_INPUT,
       NORM_ATTN,
       NORM_FF };
static void norm_run(void *ctx, int t, int nt)
{
	engine *e = ctx;
	const model_config *c = &e->m->cfg;
	const layer_weights *w = &e->m->layers[e->layer];
	run_state *s = &e->s;
	int H = c->hidden, r0, r1;
	team_split(e->n_rows, t, nt, 1, &r0, &r1);
	for (int r = r0; r < r1; r++) {
		float *x = s->x + (size_t)r * H, *y = s->xb2 + (size_t)r * H, *xb = s->xb + (size_t)r * H;
		if (e->norm_stage == NORM_INPUT) {
			rmsnorm(xb, x, w->input_norm, H, c->rms_eps);
			continue;
		}
		rmsnorm(y, y, e->norm_stage == NORM_ATTN ? w->post_attn_norm : w->post_ff_norm, H, c->rms_eps);
		for (int h = 0; h < H; h++) x[h] += y[h];
		if (e->norm_stage == NORM_ATTN) rmsnorm(xb, x, w->pre_ff_norm, H, c->rms_eps);
	}
}

/* Across the team for prefill-sized steps; a decode step's few rows cost less
 * than waking the team. */
static void norms(engine *e)
{
	if (e->n_rows >= 16) team_run(e->team, norm_run, e);
	else norm_run(e, 0, 1);
}

/* q/k norms, RoPE, and K/V into the cache, split by rows. */
static void prep_run(void *ctx, int t, int nt)
{
	engine *e = ctx;
	const model_config *c = &e->m->cfg;
	const layer_weights *w = &e->m->layers[e->layer];
	run_state *s = &e->s;
	int D = c->head_dim, qd = c->n_heads * D, kvd = c->n_kv_heads * D, r0, r1;
	int kind = c->sliding[e->layer] ? 0 : 1;
	team_split(e->n_rows, t, nt, 1, &r0, &r1);
	for (int r = r0; r < r1; r++) {
		const float *cs = s->rope + ((size_t)r * 2 + kind) * D;
		float *q = s->q + (size_t)r * qd, *k = s->k + (size_t)r * kvd, *v = s->v + (size_t)r * kvd;
		for (int h = 0; h < c->n_heads; h++) {
			rmsnorm(q + h * D, q + h * D, w->q_norm, D, c->rms_eps);
			rope(q + h * D, cs, D);
		}
		int p = s->row_pos[r];
		int block = s->layer_blocks[r][p / KV_BLOCK_TOKENS], slot = p % KV_BLOCK_TOKENS;
		char *kc = kv_block_k(e->kv, block, e->layer), *vc = kv_block_v(e->kv, block, e->layer);
		size_t es = dtype_size(e->kv_dtype);
		for (int h = 0; h < c->n_kv_heads; h++) {
			rmsnorm(k + h * D, k + h * D, w->k_norm, D, c->rms_eps);
			rope(k + h * D, cs, D);
			size_t at = ((size_t)h * KV_BLOCK_TOKENS + slot) * D * es;
			if (e->kv_dtype == DTYPE_BF16) {
				uint16_t *kd = (uint16_t *)(kc + at), *vd = (uint16_t *)(vc + at);
				for (int i = 0; i < D; i++) {
					kd[i] = f32_to_bf16(k[h * D + i]);
					vd[i] = f32_to_bf16(v[h * D + i]);
				}
			} else {
				memcpy(kc + at, k + h * D, (size_t)D * sizeof(float));
				memcpy(vc + at, v + h * D, (size_t)D * sizeof(float));
			}
		}
	}
}

/* Attention, split across threads in units of (rows, kv head, heads): a
 * unit's query heads share its keys and values, which the kernels read once
 * for all of them, one KV block (a contiguous run of positions) at a time.
 * A unit holds every head of its kv head when there are enough units to keep
 * the threads busy (prefill, many decode rows), one head otherwise, and up to
 * ATTN_TILE_ROWS consecutive rows of one sequence (a tile, s->tiles): each
 * block is read for the first row and found in L1 by the others. Units go
 * to the chunks in turn (unit i to chunk i mod n), so that the long rows at
 * the end of a prompt are spread as evenly as the short ones at its start.
 * Per head the sums are the same whatever the unit: scores q.k (dot_keys),
 * exp(s - max) summed in position order, then out += (p / sum) v in
 * position order (axpy_values). */
static void attn_run(void *ctx, int t, int nt)
{
	engine *e = ctx;
	const model_config *c = &e->m->cfg;
	const kernels *k = e->k;
	run_state *s = &e->s;
	int D = c->head_dim, qd = c->n_heads * D, group = c->n_heads / c->n_kv_heads;
	int sliding = c->sliding[e->layer];
	float scale = 1.0f / sqrtf(c->query_pre_attn_scalar), cap = c->attn_softcap;
	int hpu = s->n_tiles * c->n_kv_heads >= 2 * nt ? group : 1; /* heads per unit */
	int per_tile = c->n_heads / hpu, units = s->n_tiles * per_tile;
	size_t ld = (size_t)e->opt.max_model_len, es = dtype_size(e->kv_dtype);
	float *sc = s->scores + (size_t)t * ATTN_TILE_ROWS * (size_t)group * ld;
	for (int u = t; u < units; u += nt) {
		int r0 = s->tiles[u / per_tile], r1 = s->tiles[u / per_tile + 1];
		int h0 = u % per_tile * hpu, kh = h0 / group, start[ATTN_TILE_ROWS] = {0};
		for (int r = r0; r < r1; r++) {
			int p = s->row_pos[r];
			start[r - r0] = sliding && p - c->sliding_window + 1 > 0 ? p - c->sliding_window + 1 : 0;
		}
		const int32_t *blocks = s->layer_blocks[r0]; /* the tile's rows share one sequence */
		int first = start[0], last = s->row_pos[r1 - 1];
		/* pass 0: the scores against the keys; pass 1, after the softmax of
		 * each row: the outputs from the values; one block at a time */
		for (int pass = 0; pass < 2; pass++) {
			if (pass == 1)
				for (int r = r0; r < r1; r++) {
					float *out = s->att + (size_t)r * qd + (size_t)h0 * D;
					for (int g = 0; g < hpu; g++) {
						k->softmax(sc + ((size_t)(r - r0) * group + g) * ld, s->row_pos[r] - start[r - r0] + 1, scale, cap);
						memset(out + (size_t)g * D, 0, (size_t)D * sizeof *out);
					}
				}
			for (int b = first / KV_BLOCK_TOKENS; b <= last / KV_BLOCK_TOKENS; b++) {
				const char *kv = (const char *)(pass ? kv_block_v : kv_block_k)(e->kv, blocks[b], e->layer) +
						 (size_t)kh * KV_BLOCK_TOKENS * D * es;
				for (int r = r0; r < r1; r++) { /* the part of the block in the row's range */
					int j0 = b * KV_BLOCK_TOKENS, j1 = j0 + KV_BLOCK_TOKENS - 1, st = start[r - r0], p = s->row_pos[r];
					if (j0 < st) j0 = st;
					if (j1 > p) j1 = p;
					if (j0 > j1) continue;
					float *scr = sc + (size_t)(r - r0) * group * ld + (j0 - st);
					const char *at = kv + (size_t)(j0 % KV_BLOCK_TOKENS) * D * es;
					size_t row = (size_t)r * qd + (size_t)h0 * D;
					if (pass == 0) k->dot_keys(scr, ld, s->q + row, (size_t)D, hpu, at, e->kv_dtype, j1 - j0 + 1, D);
					else k->axpy_values(s->att + row, (size_t)D, scr, ld, hpu, at, e->kv_dtype, j1 - j0 + 1, D);
				}
			}
		}
	}
}

static void matmul_par(engine *e, float *out, const float *x, int n_rows, const tensor *w)
{
	mm_job j = {.e = e, .x = x, .n_rows = n_rows, .in = w->cols, .n_mats = 1, .w = {w}, .out = {out}};
	mm_dispatch(e, &j, 0);
}

/* ------------------------------------------------------------ the step */

static void forward(engine *e)
{
	const model *m = e->m;
	const model_config *c = &m->cfg;
	run_state *s = &e->s;
	int H = c->hidden, D = c->head_dim, n = e->n_rows, half = D / 2;

	/* embeddings and the RoPE angles of every row */
	int r = 0;
	s->n_tiles = 0;
	for (int it = 0; r < n; it++) {
		const engine_item *item = &e->items[it];
		for (int i = 0; i < item->n_tokens; i++, r++) {
			if (i % ATTN_TILE_ROWS == 0) s->tiles[s->n_tiles++] = r;
			float *x = s->x + (size_t)r * H;
			int tok = item->tokens[i];
			size_t rb = dtype_row_bytes(m->embed.type, (size_t)H);
			if (dtype_is_x8(m->embed.type))
				quant_x8_dequantize_row(m->embed.type, x, (const char *)m->embed.data + (size_t)(tok / X8_ROWS) * X8_ROWS * rb, tok % X8_ROWS, (size_t)H);
			else
				e->k->to_f32(x, (const char *)m->embed.data + (size_t)tok * rb, m->embed.type, (size_t)H);
			for (int h = 0; h < H; h++) x[h] *= c->embed_scale;
			float pos = (float)s->row_pos[r];
			for (int kind = 0; kind < 2; kind++) {
				float *cs = s->rope + ((size_t)r * 2 + kind) * D;
				const float *inv = kind ? s->inv_freq_full : s->inv_freq_local;
				for (int f = 0; f < half; f++) {
					float ang = pos * inv[f];
					cs[f] = (float)cos((double)ang);
					cs[half + f] = (float)sin((double)ang);
				}
			}
		}
	}

	s->tiles[s->n_tiles] = n;

	for (int l = 0; l < c->n_layers; l++) {
		const layer_weights *w = &m->layers[l];
		e->layer = l;
		for (r = 0; r < n; r++) s->layer_blocks[r] = kv_seq_layer_blocks(e->kv, s->row_seq[r], l);
		e->norm_stage = NORM_INPUT;
		norms(e);
		mm_job qkv = {.e = e, .x = s->xb, .n_rows = n, .in = H, .n_mats = 3, .w = {&w->q, &w->k, &w->v}, .out = {s->q, s->k, s->v}};
		mm_dispatch(e, &qkv, 0);
		team_run(e->team, prep_run, e);
		team_run(e->team, attn_run, e);
		matmul_par(e, s->xb2, s->att, n, &w->o);
		e->norm_stage = NORM_ATTN;
		norms(e);
		mm_job glu = {.e = e, .x = s->xb, .n_rows = n, .in = H, .n_mats = 2, .glu = 1, .w = {&w->gate, &w->up}, .out = {s->hb, s->hb2}};
		mm_dispatch(e, &glu, 0);
		matmul_par(e, s->xb2, s->hb, n, &w->down);
		e->norm_stage = NORM_FF;
		norms(e);
	}

	if (e->n_logits == 0) return;
	uint64_t t0 = time_mono_ns();
	for (int i = 0; i < e->n_logits; i++)
		rmsnorm(s->xl + (size_t)i * H, s->x + (size_t)s->logit_row[i] * H, m->final_norm, H, c->rms_eps);
	/* The rows are computed together (each weight row read once) into one
	 * array: straight into the items' buffers when they lie end to end (one
	 * row, or the scheduler's decode rows, which it hands out in order),
	 * else into s->logits and copied out (16 rows are 16 MiB a step). */
	float *dst = s->logit_dst[0];
	for (int i = 1; i < e->n_logits && dst != s->logits; i++)
		if (s->logit_dst[i] != s->logit_dst[0] + (size_t)i * c->vocab) dst = s->logits;
	mm_job lj = {.e = e, .x = s->xl, .n_rows = e->n_logits, .in = H, .n_mats = 1, .w = {&m->embed}, .out = {dst}, .softcap = c->final_softcap};
	/* the output projection is most of a decode step's bytes: in small chunks,
	 * so that no thread is left streaming alone at the end while another waits */
	int nt = team_threads(e->team);
	mm_dispatch(e, &lj, nt == 1 ? 1 : nt * LOGIT_CHUNKS_PER_THREAD);
	if (dst == s->logits)
		for (int i = 0; i < e->n_logits; i++)
			memcpy(s->logit_dst[i], s->logits + (size_t)i * c->vocab, (size_t)c->vocab * sizeof(float));
	e->output_ns_total += time_mono_ns() - t0;
}

int engine_step(engine *e, const engine_item *items, int n_items, char *err, size_t errlen)
{
	const model_config *c = &e->m->cfg;
	run_state *s = &e->s;
	int rows = 0, n_logits = 0, need = 0;
	if (n_items < 0 || (n_items > 0 && !items)) return util_errf(err, errlen, "engine: bad item list"), ENGINE_EINVAL;
	for (int i = 0; i < n_items; i++) {
		const engine_item *it = &items[i];
		if (!kv_seq_valid(e->kv, it->seq))
			return util_errf(err, errlen, "engine: item %d: sequence %d is not allocated", i, it->seq), ENGINE_EINVAL;
		for (int j = 0; j < i; j++)
			if (items[j].seq == it->seq)
				return util_errf(err, errlen, "engine: sequence %d appears twice in one step", it->seq), ENGINE_EINVAL;
		if (it->n_tokens < 1 || !it->tokens)
			return util_errf(err, errlen, "engine: item %d: no tokens", i), ENGINE_EINVAL;
		if (it->n_tokens > e->opt.max_batch_tokens - rows)
			return util_errf(err, errlen, "engine: step exceeds max_batch_tokens (%d)", e->opt.max_batch_tokens), ENGINE_EINVAL;
		rows += it->n_tokens;
		if (kv_seq_len(e->kv, it->seq) + (long)it->n_tokens > e->opt.max_model_len)
			return util_errf(err, errlen, "engine: sequence %d would exceed max_model_len (%d)", it->seq, e->opt.max_model_len), ENGINE_EINVAL;
		for (int j = 0; j < it->n_tokens; j++)
			if (it->tokens[j] < 0 || it->tokens[j] >= c->vocab)
				return util_errf(err, errlen, "engine: token id %d is outside the vocabulary (0..%d)", it->tokens[j], c->vocab - 1), ENGINE_EINVAL;
		int nl = it->logits ? (it->n_logits > 0 ? it->n_logits : 1) : 0;
		if (nl > it->n_tokens)
			return util_errf(err, errlen, "engine: item %d asks for %d rows of logits from %d tokens", i, nl, it->n_tokens), ENGINE_EINVAL;
		if ((n_logits += nl) > e->opt.max_logits_rows)
			return util_errf(err, errlen, "engine: more than %d rows of logits asked for", e->opt.max_logits_rows), ENGINE_EINVAL;
		need += kv_seq_blocks_needed(e->kv, it->seq, it->n_tokens);
	}
	/* the window pool is sized never to run short (kv_cache.h); checked anyway,
	 * since a failed reserve after others succeeded could not be undone */
	if (!kv_cache_can_allocate(e->kv, need) ||
	    (kv_cache_window_total_blocks(e->kv) > 0 && need > kv_cache_window_free_blocks(e->kv)))
		return util_errf(err, errlen, "engine: the KV cache has %d free blocks, the step needs %d",
				 kv_cache_free_blocks(e->kv), need),
		       ENGINE_NO_BLOCKS;
	if (rows == 0) return ENGINE_OK;
	int r = 0, li = 0;
	for (int i = 0; i < n_items; i++) {
		const engine_item *it = &items[i];
		int rc = kv_seq_reserve(e->kv, it->seq, it->n_tokens);
		(void)rc; /* cannot fail: checked above */
		int p0 = kv_seq_len(e->kv, it->seq);
		for (int j = 0; j < it->n_tokens; j++, r++) {
			s->row_pos[r] = p0 + j;
			s->row_seq[r] = it->seq;
		}
		int nl = it->logits ? (it->n_logits > 0 ? it->n_logits : 1) : 0;
		for (int j = 0; j < nl; j++, li++) {
			s->logit_row[li] = r - nl + j; /* r: one past the item's last row */
			s->logit_dst[li] = it->logits + (size_t)j * (size_t)c->vocab;
		}
	}
	e->items = items;
	e->n_rows = rows;
	e->n_logits = n_logits;
	forward(e);
	for (int i = 0; i < n_items; i++) kv_seq_commit(e->kv, items[i].seq, items[i].tokens, items[i].n_tokens);
	e->items = NULL;
	return ENGINE_OK;
}

/* ------------------------------------------------------------ life */

static void state_free(run_state *s)
{
	free(s->x);
	free(s->xb);
	free(s->xb2);
	free(s->q);
	free(s->k);
	free(s->v);
	free(s->att);
	free(s->hb);
	free(s->hb2);
	free(s->rope);
	free(s->scores);
	free(s->xl);
	free(s->logits);
	free(s->row_pos);
	free(s->row_seq);
	free(s->tiles);
	free(s->layer_blocks);
	free(s->logit_row);
	free(s->logit_dst);
	free(s->inv_freq_local);
	free(s->inv_freq_full);
	free(s->xq_small);
	free(s->xq_super);
}

static int state_alloc(run_state *s, const model_config *c, const engine_options *o, int threads)
{
	size_t R = (size_t)o->max_batch_tokens, L = (size_t)o->max_logits_rows, D = (size_t)c->head_dim;
	size_t H = (size_t)c->hidden, qd = (size_t)c->n_heads * D, kvd = (size_t)c->n_kv_heads * D;
	s->x = calloc(R * H, 4);
	s->xb = calloc(R * H, 4);
	s->xb2 = calloc(R * H, 4);
	s->q = calloc(R * qd, 4);
	s->k = calloc(R * kvd, 4);
	s->v = calloc(R * kvd, 4);
	s->att = calloc(R * qd, 4);
	s->hb = calloc(R * (size_t)c->intermediate, 4);
	s->hb2 = calloc(R * (size_t)c->intermediate, 4);
	s->rope = calloc(R * 2 * D, 4);
	s->scores = calloc((size_t)threads * 4 * ATTN_TILE_ROWS * (size_t)(c->n_heads / c->n_kv_heads) * (size_t)o->max_model_len, 4); /* per chunk (team.h) */
	s->tiles = calloc(R + 1, sizeof(int));
	s->xl = calloc(L * H, 4);
	s->logits = calloc(L * (size_t)c->vocab, 4);
	s->row_pos = calloc(R, sizeof(int));
	s->row_seq = calloc(R, sizeof(int));
	s->layer_blocks = calloc(R, sizeof(*s->layer_blocks));
	s->logit_row = calloc(L, sizeof(int));
	s->logit_dst = calloc(L, sizeof(float *));
	s->inv_freq_local = calloc(D / 2, 4);
	s->inv_freq_full = calloc(D / 2, 4);
	/* the widest input of a matmul, rounded up to whole activation blocks */
	size_t in = H > qd ? H : qd, xr = R > L ? R : L;
	if ((size_t)c->intermediate > in) in = (size_t)c->intermediate;
	in = (in + QK_SUPER - 1) / QK_SUPER * QK_SUPER;
	s->xq_small = calloc(xr, quant_x_row_bytes(DTYPE_Q8_0, in));
	s->xq_super = calloc(xr, quant_x_row_bytes(DTYPE_Q4_K, in));
	if (!s->xq_small || !s->xq_super) return -1;
	if (!s->x || !s->xb || !s->xb2 || !s->q || !s->k || !s->v || !s->att || !s->hb || !s->hb2 ||
	    !s->rope || !s->scores || !s->xl || !s->logits || !s->row_pos ||
	    !s->row_seq || !s->tiles || !s->layer_blocks || !s->logit_row || !s->logit_dst || !s->inv_freq_local || !s->inv_freq_full)
		return -1;
	/* as transformers: inv_freq = 1 / base^(2i/D) in f32; linear scaling divides it */
	for (size_t i = 0; i < D / 2; i++) {
		s->inv_freq_local[i] = (float)(1.0 / pow(c->rope_local_theta, (double)(2 * i) / (double)D));
		s->inv_freq_full[i] = (float)(1.0 / pow(c->rope_theta, (double)(2 * i) / (double)D)) / c->rope_scaling;
	}
	return 0;
}

engine *engine_load(const char *dir, const engine_options *opt_in, char *err, size_t errlen)
{
	engine *e = calloc(1, sizeof *e);
	if (!e) {
		util_errf(err, errlen, "engine: out of memory");
		return NULL;
	}
	engine_options o = opt_in ? *opt_in : (engine_options){0};
	e->m = model_load(dir, err, errlen);
	if (!e->m) goto bad;
	const model_config *c = &e->m->cfg;
	if (o.threads <= 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		o.threads = n > 0 ? (int)n : 1;
	}
	if (o.max_batch_tokens <= 0) o.max_batch_tokens = 512;
	if (o.max_seqs <= 0) o.max_seqs = 64;
	if (o.max_model_len <= 0) o.max_model_len = c->max_position < 8192 ? c->max_position : 8192;
	if (o.max_logits_rows <= 0) o.max_logits_rows = o.max_seqs + ENGINE_EXTRA_LOGITS_ROWS;
	if (o.max_model_len > c->max_position) {
		util_errf(err, errlen, "engine: max_model_len %d exceeds the model's max_position_embeddings %d",
			  o.max_model_len, c->max_position);
		goto bad;
	}
	e->k = o.kernels ? kernels_get(o.kernels) : kernels_best();
	if (!e->k) {
		util_errf(err, errlen, "engine: kernels \"%s\" are unknown or unsupported by this CPU", o.kernels);
		goto bad;
	}
	const char *kvt = o.kv_cache_dtype ? o.kv_cache_dtype : "auto";
	if (strcmp(kvt, "auto") == 0 || strcmp(kvt, "bf16") == 0) e->kv_dtype = DTYPE_BF16;
	else if (strcmp(kvt, "f32") == 0) e->kv_dtype = DTYPE_F32;
	else {
		util_errf(err, errlen, "engine: kv_cache_dtype \"%.40s\" is not supported (auto, bf16, f32)", kvt);
		goto bad;
	}
	o.kv_cache_dtype = e->kv_dtype == DTYPE_BF16 ? "bf16" : "f32";
	kv_cache_config kc = {.n_layers = c->n_layers, .n_kv_heads = c->n_kv_heads, .head_dim = c->head_dim, .max_seqs = o.max_seqs, .max_model_len = o.max_model_len, .prefix_caching = !o.no_prefix_caching, .dtype = e->kv_dtype, .sliding = c->sliding, .sliding_window = c->sliding_window, .max_step_tokens = o.max_batch_tokens};
	/* the window pool has a fixed size; a memory budget buys full-pool blocks
	 * with what it leaves (a model without full layers: blocks cost nothing) */
	size_t bb, wbytes;
	int wblocks;
	kv_cache_sizes(&kc, &bb, &wblocks, &wbytes);
	int per_seq = (o.max_model_len + KV_BLOCK_TOKENS - 1) / KV_BLOCK_TOKENS;
	if (o.num_kv_blocks <= 0) {
		if (o.kv_cache_bytes > 0 && bb > 0) {
			uint64_t n = o.kv_cache_bytes > wbytes ? (o.kv_cache_bytes - wbytes) / bb : 0;
			o.num_kv_blocks = n > (1u << 30) ? (1 << 30) : (int)n;
		} else {
			o.num_kv_blocks = per_seq + o.max_seqs - 1;
		}
	}
	if (o.num_kv_blocks < 1) {
		util_errf(err, errlen, "engine: the KV cache needs at least one block of %zu bytes beside %zu bytes of "
				       "sliding-window blocks",
			  bb, wbytes);
		goto bad;
	}
	kc.n_blocks = o.num_kv_blocks;
	e->kv = kv_cache_new(&kc, err, errlen);
	if (!e->kv) goto bad;
	e->team = team_new(o.threads);
	if (!e->team) {
		util_errf(err, errlen, "engine: cannot start %d threads", o.threads);
		goto bad;
	}
	o.threads = team_threads(e->team);
	dtype qt = DTYPE_Q8_0;
	if ((o.quantization && model_quantization_type(o.quantization, &qt, err, errlen) < 0) ||
	    model_convert(e->m, o.quantization != NULL, qt, !o.no_repack, e->team, err, errlen) < 0)
		goto bad;
	if (state_alloc(&e->s, c, &o, o.threads) < 0) {
		util_errf(err, errlen, "engine: out of memory for the run state");
		goto bad;
	}
	o.kernels = e->k->name;
	e->opt = o;
	return e;
bad:
	engine_free(e);
	return NULL;
}

void engine_free(engine *e)
{
	if (!e) return;
	team_free(e->team);
	state_free(&e->s);
	kv_cache_free(e->kv);
	model_free(e->m);
	free(e);
}

const model *engine_model(const engine *e) { return e->m; }
const model_config *engine_config(const engine *e) { return &e->m->cfg; }
kv_cache *engine_kv_cache(engine *e) { return e->kv; }
int engine_vocab(const engine *e) { return e->m->cfg.vocab; }
int engine_threads(const engine *e) { return e->opt.threads; }
const char *engine_kernels(const engine *e) { return e->k->name; }
const engine_options *engine_get_options(const engine *e) { return &e->opt; }
uint64_t engine_step_weight_bytes(const engine *e) { return e->m->weight_bytes; }
uint64_t engine_output_ns_total(const engine *e) { return e->output_ns_total; }
