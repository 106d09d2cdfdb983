// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Pages are rendered from snapshots the loop folds when asked: a page
 * shows what the loop had when it answered, counters read from the maps
 * at render; with no loop to answer it is 503 after the wait, and once
 * the loop has stopped it gets the last snapshot at once.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "kb_test.h"

#include "agent.h"
#include "agent_test.h"
#include "config.h"
#include "fakes.h"
#include "http.h"
#include "pagebuf.h"

static const char config[] =
	"max_destinations: 16\n"
	"defaults: { mode: enforce, consecutive_failures: 2, open_duration: 1h }\n"
	"destinations:\n"
	"  - { name: db, host: 10.0.0.1, port: 5432 }\n";

static void test_pages(void **state)
{
	struct agent *a = calloc(1, sizeof(*a));
	struct config *cfg = parse("config", config);
	uint64_t t0 = mono_now(), before, waited;
	uint32_t id;
	char *body;

	assert_non_null(a);
	assert_int_equal(agent_init(a, cfg, fake_bpf_open(), 16, t0), 0);

	/* No loop answers: after the wait, 503 and why. */
	before = mono_now();
	assert_int_equal(page_body(a, agent_metrics, &body), 503);
	waited = mono_now() - before;
	check_str("body", body, "unavailable: the breaker loop has not answered\n");
	free(body);
	if (waited < 4 * SEC)
		fail_msg("answered 503 after %ju ms, before the page's wait", (uintmax_t)(waited / MS));

	/* The loop answers: the breaker as the loop has it, the kernel's counters as the maps have them. */
	id = circuit_named(a, "db")->slot;
	fake_event(id, KB_RES_REFUSED, t0 + SEC);
	fake_event(id, KB_RES_REFUSED, t0 + SEC);
	assert_int_equal(agent_drain(a, t0 + SEC), 0);
	fake_maps.stats[id].connects[KB_RES_REFUSED] = 2;
	body = render("open", a, agent_metrics);
	if (!strstr(body, "\ncircuit_breaker_state{circuit_name=\"db\",state=\"open\"} 1\n") ||
	    !strstr(body, "\nkbreaker_tcp_connects_total{circuit_name=\"db\",result=\"refused\"} 2\n"))
		fail_msg("/metrics does not show db open with 2 refusals:\n%s", body);
	free(body);

	/* The loop is gone: the last snapshot at once, counters still fresh from the maps. */
	agent_stop_publishing(a);
	fake_maps.stats[id].connects[KB_RES_REFUSED] = 3;
	before = mono_now();
	assert_int_equal(page_body(a, agent_metrics, &body), 200);
	if (mono_now() - before > SEC)
		fail_msg("a page waited %ju ms for a loop that stopped", (uintmax_t)((mono_now() - before) / MS));
	if (!strstr(body, "\ncircuit_breaker_state{circuit_name=\"db\",state=\"open\"} 1\n") ||
	    !strstr(body, "\nkbreaker_tcp_connects_total{circuit_name=\"db\",result=\"refused\"} 3\n"))
		fail_msg("/metrics after the loop stopped:\n%s", body);
	free(body);
	assert_int_equal(page_body(a, agent_status, &body), 200);
	if (!strstr(body, "\"name\":\"db\"") || !strstr(body, "\"state\":\"open\""))
		fail_msg("/status after the loop stopped:\n%s", body);
	free(body);
	agent_fini(a);
	drop(cfg);
	free(a);
}

/* A page's buffer: every byte written comes back, across its mapping's growth, NUL-terminated. */
static void test_pagebuf(void **state)
{
	static const size_t sizes[] = { 0, 1, (2 << 20) - 65, 2 << 20, 9000001 };

	for (size_t k = 0; k < ARRAY_SIZE(sizes); k++) {
		struct pagebuf pb;
		FILE *out = pagebuf_open(&pb);
		size_t len = 12345;
		char *text;

		assert_non_null(out);
		for (size_t i = 0; i < sizes[k]; i++)
			fputc('a' + i % 23, out);
		assert_int_equal(fclose(out), 0);
		text = pagebuf_take(&pb, &len);
		assert_non_null(text);
		check_eq("length", len, sizes[k]);
		for (size_t i = 0; i < sizes[k]; i++)
			if (text[i] != 'a' + (char)(i % 23))
				fail_msg("byte %zu of %zu is %d", i, sizes[k], text[i]);
		check_eq("terminator", text[sizes[k]], 0);
		pagebuf_free(text);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pagebuf),
		cmocka_unit_test(test_pages),
	};

	return cmocka_run_group_tests_name("agent_pages", tests, NULL, NULL);
}
