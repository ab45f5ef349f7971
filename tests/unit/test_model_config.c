/*
 * test_model_config.c — config.json and generation_config.json are checked
 * value by value at load: each bad value of a table is refused with the file
 * and the field named, and the good base files load.
 */
#include <stdlib.h>
#include "t.h"
#include "infer/model.h"

/* A small valid config.json; each case replaces one field (appended last, so
 * the JSON reader's last-wins rule is not relied on: the base omits it). */
static const char base_cfg[] =
	"{\"model_type\":\"gemma3_text\",\"hidden_size\":8,\"intermediate_size\":8,\"num_hidden_layers\":2,"
	"\"num_attention_heads\":2,\"num_key_value_heads\":1,\"head_dim\":4,\"vocab_size\":10,"
	"\"max_position_embeddings\":64";

static int parse_cfg(const char *extra, char *err, size_t errlen)
{
	char text[1024];
	model_config c;
	snprintf(text, sizeof text, "%s%s%s}", base_cfg, *extra ? "," : "", extra);
	err[0] = 0;
	return model_config_parse(&c, text, strlen(text), err, errlen);
}

static void test_good_config(void)
{
	char err[256];
	T_EQ_INT(parse_cfg("", err, sizeof err), 0);
	T_EQ_INT(parse_cfg("\"rms_norm_eps\":1e-6,\"sliding_window\":1,\"final_logit_softcapping\":30.0,"
			   "\"eos_token_id\":[1,9],\"bos_token_id\":2,\"hidden_size\":8.0",
			   err, sizeof err),
		 0);
	T_EQ_INT(parse_cfg("\"rope_scaling\":{\"rope_type\":\"linear\",\"factor\":8}", err, sizeof err), 0);
}

static void test_bad_configs(void)
{
	static const struct {
		const char *field;
		const char *json;
	} cases[] = {
		{"rms_norm_eps", "\"rms_norm_eps\":-1"},
		{"rms_norm_eps", "\"rms_norm_eps\":0"},
		{"rms_norm_eps", "\"rms_norm_eps\":1e-60"}, /* 0 as a float */
		{"rms_norm_eps", "\"rms_norm_eps\":\"1e-6\""},
		{"rope_theta", "\"rope_theta\":0"},
		{"rope_theta", "\"rope_theta\":1e300"}, /* infinite as a float */
		{"rope_local_base_freq", "\"rope_local_base_freq\":-10000"},
		{"query_pre_attn_scalar", "\"query_pre_attn_scalar\":0"},
		{"attn_logit_softcapping", "\"attn_logit_softcapping\":-50"},
		{"final_logit_softcapping", "\"final_logit_softcapping\":-30"},
		{"hidden_size", "\"hidden_size\":0"},
		{"hidden_size", "\"hidden_size\":8.5"},
		{"intermediate_size", "\"intermediate_size\":-8"},
		{"num_hidden_layers", "\"num_hidden_layers\":0"},
		{"num_attention_heads", "\"num_attention_heads\":1e300"},
		{"num_key_value_heads", "\"num_key_value_heads\":0"},
		{"num_key_value_heads", "\"num_key_value_heads\":3"}, /* 2 heads not a multiple of 3 */
		{"head_dim", "\"head_dim\":5"},
		{"vocab_size", "\"vocab_size\":-1"},
		{"sliding_window", "\"sliding_window\":0"},
		{"max_position_embeddings", "\"max_position_embeddings\":0"},
		{"sliding_window_pattern", "\"sliding_window_pattern\":0"},
		{"eos_token_id", "\"eos_token_id\":10"},
		{"eos_token_id", "\"eos_token_id\":-7"},
		{"eos_token_id", "\"eos_token_id\":[1,1e300]"},
		{"bos_token_id", "\"bos_token_id\":2.5"},
		{"pad_token_id", "\"pad_token_id\":4294967296"},
		{"rope_scaling", "\"rope_scaling\":{\"rope_type\":\"linear\",\"factor\":0.5}"},
		{"rope_scaling", "\"rope_scaling\":{\"rope_type\":\"linear\",\"factor\":1e300}"},
		{"rope_scaling", "\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":2}"},
		{"layer_types", "\"layer_types\":[\"full_attention\"]"},
	};
	char err[256];
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int rc = parse_cfg(cases[i].json, err, sizeof err);
		if (rc != -1 || !strstr(err, "config.json") || !strstr(err, cases[i].field))
			fprintf(stderr, "  case %s: rc %d, \"%s\"\n", cases[i].json, rc, err);
		T_EQ_INT(rc, -1);
		T_CHECK(strstr(err, "config.json") != NULL);
		T_CHECK(strstr(err, cases[i].field) != NULL);
	}
}

static void test_bad_generation_configs(void)
{
	static const struct {
		const char *field;
		const char *json;
	} cases[] = {
		{"eos_token_id", "{\"eos_token_id\":1e300}"},
		{"eos_token_id", "{\"eos_token_id\":-7}"},
		{"eos_token_id", "{\"eos_token_id\":1.5}"},
		{"eos_token_id", "{\"eos_token_id\":[1,\"x\"]}"},
		{"eos_token_id", "{\"eos_token_id\":[]}"},
		{"eos_token_id", "{\"eos_token_id\":[1,2,3,4,5,6,7,8,9]}"},
		{"eos_token_id", "{\"eos_token_id\":\"1\"}"},
		{"bos_token_id", "{\"bos_token_id\":-1}"},
		{"pad_token_id", "{\"pad_token_id\":1e20}"},
		{"temperature", "{\"temperature\":-0.5}"},
		{"temperature", "{\"temperature\":1e300}"},
		{"top_k", "{\"top_k\":-1}"},
		{"top_k", "{\"top_k\":1e300}"},
		{"top_k", "{\"top_k\":6.5}"},
		{"top_p", "{\"top_p\":0}"},
		{"top_p", "{\"top_p\":1.5}"},
		{"min_p", "{\"min_p\":-0.1}"},
		{"min_p", "{\"min_p\":2}"},
		{"repetition_penalty", "{\"repetition_penalty\":0}"},
		{"do_sample", "{\"do_sample\":1}"},
	};
	char err[256];
	model_generation g;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		err[0] = 0;
		int rc = model_generation_parse(&g, cases[i].json, strlen(cases[i].json), err, sizeof err);
		if (rc != -1 || !strstr(err, cases[i].field))
			fprintf(stderr, "  case %s: rc %d, \"%s\"\n", cases[i].json, rc, err);
		T_EQ_INT(rc, -1);
		T_CHECK(strstr(err, "generation_config.json") != NULL);
		T_CHECK(strstr(err, cases[i].field) != NULL);
	}
	/* Ids well-formed but outside the model's vocabulary: refused at load. */
	static const struct {
		const char *field;
		const char *json;
	} vocab_cases[] = {
		{"eos_token_id", "{\"eos_token_id\":[1,10]}"},
		{"bos_token_id", "{\"bos_token_id\":10}"},
		{"pad_token_id", "{\"pad_token_id\":99}"},
	};
	for (size_t i = 0; i < sizeof vocab_cases / sizeof vocab_cases[0]; i++) {
		const char *j = vocab_cases[i].json;
		T_EQ_INT(model_generation_parse(&g, j, strlen(j), err, sizeof err), 0);
		err[0] = 0;
		T_EQ_INT(model_generation_check(&g, 10, err, sizeof err), -1);
		T_CHECK(strstr(err, "generation_config.json") != NULL);
		T_CHECK(strstr(err, vocab_cases[i].field) != NULL);
	}
	const char *good = "{\"do_sample\":true,\"top_k\":64,\"top_p\":0.95,\"eos_token_id\":[1,9],\"temperature\":0}";
	T_EQ_INT(model_generation_parse(&g, good, strlen(good), err, sizeof err), 0);
	T_EQ_INT(model_generation_check(&g, 10, err, sizeof err), 0);
	T_EQ_INT(g.n_eos, 2);
	T_EQ_INT(g.eos_ids[1], 9);
	T_EQ_INT(g.top_k, 64);
	T_EQ_INT(model_generation_parse(&g, "", 0, err, sizeof err), 0);
	T_EQ_INT(g.eos_ids[0], 1);
}

int main(void)
{
	T_RUN(test_good_config);
	T_RUN(test_bad_configs);
	T_RUN(test_bad_generation_configs);
	return T_END();
}
