// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <stdio.h>
#include <json-c/json.h>
#include "config.h"
#include "addr.h"
#include "status.h"

static double secs(uint64_t from, uint64_t to)
{
	return to > from ? (double)(to - from) / 1e9 : 0.0;
}

/* A number printed with `fmt` decimals, so the document reads the same every time. */
static json_object *fixed(double v, const char *fmt)
{
	char text[ADDR_TEXT_MAX];

	snprintf(text, sizeof(text), fmt, v);
	return json_object_new_double_s(v, text);
}

/* json_object_object_add that remembers a failed allocation in *ok. */
static void put(json_object *obj, const char *key, json_object *val, bool *ok)
{
	if (!val || json_object_object_add(obj, key, val)) {
		json_object_put(val);
		*ok = false;
	}
}

/* The connects object of counts by result; adds the failures among them to *failures. */
static json_object *connects_json(const __u64 *connects, uint64_t *failures, bool *ok)
{
	json_object *o = json_object_new_object();

	for (int r = 0; o && r < KB_RES_MAX; r++) {
		put(o, breaker_result_name(r), json_object_new_uint64(connects[r]), ok);
		if (breaker_is_failure(r))
			*failures += connects[r];
	}
	return o;
}

static json_object *wl_json(const struct status_dst *d, bool *ok)
{
	json_object *arr = json_object_new_array();

	for (size_t i = 0; arr && i < d->n_wl; i++) {
		const struct metrics_wl *w = &d->wl[i];
		json_object *o = json_object_new_object();
		uint64_t failures = 0;

		if (!o) {
			*ok = false;
			break;
		}
		put(o, "workload", json_object_new_string(w->name), ok);
		put(o, "connects", connects_json(w->st.connects, &failures, ok), ok);
		put(o, "failures", json_object_new_uint64(failures), ok);
		put(o, "blocked", json_object_new_uint64(w->st.blocked), ok);
		if (w->state >= 0)
			put(o, "state", json_object_new_string(breaker_state_name(w->state)), ok);
		if (!o || json_object_array_add(arr, o)) {
			json_object_put(o);
			*ok = false;
		}
	}
	return arr;
}

static json_object *dst_json(const struct status_dst *d, uint64_t now, bool *ok)
{
	static const struct kb_dst_stats none;
	const struct kb_dst_stats *st = d->stats ? d->stats : &none;
	json_object *o = json_object_new_object(), *connects, *addrs;
	char addr[ADDR_TEXT_MAX] = "";
	uint64_t failures = 0;

	if (!o) {
		*ok = false;
		return NULL;
	}
	if (d->addr)
		addr_prefix_text(d->addr, d->prefix_len, addr, sizeof(addr));
	else if (d->n_addrs)
		addr_text(d->addrs[0], addr, sizeof(addr));
	put(o, "name", json_object_new_string(d->name), ok);
	put(o, "host", json_object_new_string(d->host ? d->host : ""), ok);
	put(o, "address", json_object_new_string(addr), ok);
	put(o, "port", json_object_new_int(d->port), ok);
	put(o, "mode", json_object_new_string(config_mode_name(d->mode)), ok);
	put(o, "state", json_object_new_string(breaker_state_name(d->state)), ok);
	put(o, "time_in_state_seconds", fixed(secs(d->since_ns, now), "%.3f"), ok);
	/* null, not absent: kbreakerctl tells "not open" from an old agent. */
	if (json_object_object_add(o, "next_half_open_seconds", d->next_half_open_ns ?
				   fixed(secs(now, d->next_half_open_ns), "%.3f") : NULL))
		*ok = false;
	put(o, "consecutive_failures", json_object_new_uint64(d->consecutive_failures), ok);
	put(o, "failure_rate", fixed(d->failure_rate, "%.4f"), ok);
	connects = connects_json(st->connects, &failures, ok);
	put(o, "connects", connects, ok);
	put(o, "failures", json_object_new_uint64(failures), ok);
	put(o, "blocked", json_object_new_uint64(st->blocked), ok);
	put(o, "would_block", json_object_new_uint64(st->would_block), ok);
	addrs = json_object_new_array();
	for (size_t k = 0; addrs && k < d->n_addrs; k++) {
		json_object *a = json_object_new_object();

		addr_text(d->addrs[k], addr, sizeof(addr));
		put(a, "address", json_object_new_string(addr), ok);
		if (d->member_states)
			put(a, "state", json_object_new_string(breaker_state_name(d->member_states[k])), ok);
		if (!a || json_object_array_add(addrs, a)) {
			json_object_put(a);
			*ok = false;
		}
	}
	put(o, "addresses", addrs, ok);
	put(o, "breaker", json_object_new_string(d->per_workload ? "per_workload" : "shared"), ok);
	put(o, "workloads", wl_json(d, ok), ok);
	return o;
}

int status_render(FILE *out, const char *version, uint64_t started_ns, uint64_t now,
		  const struct status_dst *dsts, size_t n, const struct status_wl *wl)
{
	json_object *doc = json_object_new_object(), *arr = json_object_new_array();
	bool ok = doc && arr;
	int err = 0;

	put(doc, "version", json_object_new_string(version), &ok);
	put(doc, "uptime_seconds", fixed(secs(started_ns, now), "%.3f"), &ok);
	for (size_t i = 0; ok && i < n; i++) {
		json_object *d = dst_json(&dsts[i], now, &ok);

		if (!d || json_object_array_add(arr, d)) {
			json_object_put(d);
			ok = false;
		}
	}
	put(doc, "destinations", arr, &ok);
	if (wl) {
		json_object *w = json_object_new_object();

		put(w, "depth", json_object_new_uint64(wl->depth), &ok);
		put(w, "max", json_object_new_uint64(wl->max), &ok);
		put(w, "labelled", json_object_new_uint64(wl->labelled), &ok);
		put(w, "folded", json_object_new_uint64(wl->folded), &ok);
		put(doc, "workloads", w, &ok);
	} else if (json_object_object_add(doc, "workloads", NULL)) {
		ok = false;
	}
	if (!ok)
		err = -ENOMEM;
	else if (fprintf(out, "%s\n", json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN |
						JSON_C_TO_STRING_NOSLASHESCAPE)) < 0 || ferror(out))
		err = -EIO;
	json_object_put(doc);
	return err;
}
