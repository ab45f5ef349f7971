/*
 * test_lab_state.c — the lab's state file (lab_state.c): what lab_state_save
 * writes, lab_state_load reads back; a state.json larger than the reader's
 * cap is refused with a reason, never parsed from a cut prefix.
 */
#include "lab/lab_state.c"
#include "t.h"

static void test_round_trip(void)
{
	char dir[] = "/tmp/test_lab_state.XXXXXX";
	T_CHECK(mkdtemp(dir) != NULL);
	lab_state s;
	lab_state_init(&s, dir);
	str_copy(s.id, "igl-42", sizeof s.id);
	s.complete = 1;
	s.port_base = 11000;
	str_copy(s.gateway[1], "10.0.1.2:8080", sizeof s.gateway[1]);
	T_EQ_INT(lab_state_save(&s), 0);
	lab_state t;
	lab_state_init(&t, dir);
	char err[256] = "";
	T_EQ_INT(lab_state_load(&t, err, sizeof err), 0);
	T_EQ_STR(t.id, "igl-42");
	T_EQ_INT(t.complete, 1);
	T_EQ_INT(t.port_base, 11000);
	T_EQ_STR(t.gateway[1], "10.0.1.2:8080");
	lab_state_free(&t);
	lab_state_free(&s);
	T_EQ_INT(lab_rmtree(dir), 0);
}

/* A state.json over 4 MiB whose first 4 MiB would parse as a state of its
 * own: the load must fail and say why (the cap, not a JSON error). */
static void test_oversized_refused(void)
{
	char dir[] = "/tmp/test_lab_state.XXXXXX";
	T_CHECK(mkdtemp(dir) != NULL);
	char path[sizeof dir + 16];
	snprintf(path, sizeof path, "%s/state.json", dir);
	FILE *f = fopen(path, "w");
	T_CHECK(f != NULL);
	if (!f) return;
	fputs("{\"id\":\"igl-1\",\"complete\":true,\"pad\":[", f);
	for (int i = 0; i < (5 << 20) / 4; i++) fputs(i ? ",1  " : "1   ", f);
	fputs("]}", f);
	fclose(f);
	lab_state t;
	lab_state_init(&t, dir);
	char err[256] = "";
	T_EQ_INT(lab_state_load(&t, err, sizeof err), -1);
	T_CHECK(strstr(err, "larger than") != NULL);
	T_EQ_INT(t.complete, 0);
	lab_state_free(&t);
	T_EQ_INT(lab_rmtree(dir), 0);
}

int main(void)
{
	T_RUN(test_round_trip);
	T_RUN(test_oversized_refused);
	return T_END();
}
