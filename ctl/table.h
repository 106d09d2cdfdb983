/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * table: the /status document (agent/status.h) as a kubectl-style table.
 * Pure rendering: no I/O but the FILE it is given. Unknown fields are
 * ignored and missing ones shown as "-", so an older or newer agent still
 * renders.
 *
 *   NAME       ADDRESS          STATE    FAILURE RATE   CONNECTS   FAILURES   BLOCKED   TIME IN STATE
 *   payments   127.0.0.1:8080   open     75.0%          4          3          4         3.2s
 */
#ifndef KB_CTL_TABLE_H
#define KB_CTL_TABLE_H

#include <stdio.h>
#include <json-c/json.h>

/*
 * Parse a /status body of len bytes. Returns the document or NULL with
 * errno set (EINVAL: not one JSON document, all of the body, or no
 * "destinations" array) and a reason in err.
 */
struct json_object *table_parse(const char *body, size_t len, char *err, size_t err_len);

/* Write the table for doc (from table_parse). 0 or -EIO. */
int table_render(FILE *out, struct json_object *doc);

/*
 * Write one row per (destination, workload) of doc, destinations and
 * workloads in the document's order; "-" in STATE for a shared breaker:
 *
 *   DESTINATION   WORKLOAD   BREAKER        STATE    CONNECTS   FAILURES   BLOCKED
 *   payments      A          per_workload   open     4          1          2
 *
 * 0, -ENOMEM, -EIO, or -ENODATA with nothing written when the agent's
 * workload attribution is off: "workloads" null, or absent (an older agent).
 */
int table_render_workloads(FILE *out, struct json_object *doc);

/* "850ms", "12.3s", "4m05s", "2h03m", "3d04h"; "-" for a negative value. */
void table_duration(double secs, char *buf, size_t len);

#endif /* KB_CTL_TABLE_H */
