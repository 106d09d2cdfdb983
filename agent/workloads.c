// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "workloads.h"

int workloads_init(struct workloads *w, uint32_t max, uint32_t depth)
{
	memset(w, 0, sizeof(*w));
	w->max = max;
	w->depth = depth;
	if (!max)
		return 0;
	w->names = calloc(max + 1, sizeof(*w->names));
	w->canon = calloc(max + 1, sizeof(*w->canon));
	if (!w->names || !w->canon) {
		workloads_fini(w);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i <= max; i++)
		w->canon[i] = i;
	snprintf(w->names[max], sizeof(w->names[max]), "%s", WL_OTHER);
	return 0;
}

void workloads_fini(struct workloads *w)
{
	free(w->names);
	free(w->canon);
	free(w->gone);
	w->names = NULL;
	w->canon = NULL;
	w->gone = NULL;
	w->n_gone = 0;
	w->max = 0;
}

void workloads_name(struct workloads *w, uint32_t idx, const char *name)
{
	if (idx >= w->max || w->names[idx][0] || !name[0])
		return;
	snprintf(w->names[idx], sizeof(w->names[idx]), "%s", name);
	/* A cgroup named "other" would show as a second series of the fold: it joins it. */
	if (!strcmp(name, WL_OTHER)) {
		w->canon[idx] = w->max;
		return;
	}
	for (uint32_t i = 0; i < w->max; i++)
		if (i != idx && w->canon[i] == i && !strcmp(w->names[i], w->names[idx])) {
			w->canon[idx] = i;
			return;
		}
	w->labelled++;
}

void workloads_forget(struct workloads *w, uint32_t idx)
{
	uint32_t heir = w->max;

	if (idx >= w->max || !w->names[idx][0])
		return;
	/* The next index with the same name carries it on, and the others follow it. */
	for (uint32_t i = 0; i < w->max; i++)
		if (i != idx && w->canon[i] == idx) {
			if (heir == w->max)
				heir = i;
			w->canon[i] = heir;
		}
	if (w->canon[idx] == idx && heir == w->max)
		w->labelled--;
	w->names[idx][0] = '\0';
	w->canon[idx] = idx;
}

/* Length of the well-formed UTF-8 sequence at s (RFC 3629), or 0. */
static size_t utf8_seq(const unsigned char *s)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t n;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	else
		return 0;
	/* No overlong forms, no surrogates, nothing past U+10FFFF. */
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

size_t workloads_utf8(char *label)
{
	unsigned char *p = (unsigned char *)label;
	size_t changed = 0, n;

	while (*p) {
		n = utf8_seq(p);
		if (n) {
			p += n;
			continue;
		}
		*p++ = '?';
		changed++;
	}
	return changed;
}

int workloads_label(const char *rel, char *out, size_t len)
{
	int n = snprintf(out, len, "%s", rel[0] ? rel : WL_SELF);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}
