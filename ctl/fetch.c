// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include "fetch.h"

/* Bodies larger than this are not a kbreakerd /status document. */
#define FETCH_MAX_BODY (64u << 20)

int fetch_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -EIO;
}

void fetch_fini(void)
{
	curl_global_cleanup();
}

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct fetch_result *res = userdata;
	size_t n = size * nmemb;
	char *body;

	if (res->len + n > FETCH_MAX_BODY) {
		res->too_large = true;
		return 0;	/* curl reports CURLE_WRITE_ERROR */
	}
	body = realloc(res->body, res->len + n + 1);
	if (!body)
		return 0;
	memcpy(body + res->len, ptr, n);
	res->len += n;
	body[res->len] = '\0';
	res->body = body;
	return n;
}

int fetch_get(const char *url, long timeout_ms, struct fetch_result *res)
{
	char curl_err[CURL_ERROR_SIZE] = "";
	long os_errno = 0;
	CURLcode rc;
	CURL *c;

	memset(res, 0, sizeof(*res));
	c = curl_easy_init();
	if (!c) {
		snprintf(res->err, sizeof(res->err), "cannot initialise libcurl");
		return -ENOMEM;
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, res);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_err);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	/* The agent is a local or cluster-internal endpoint: never through a proxy. */
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_USERAGENT, "kbreakerctl/" KB_VERSION);
	rc = curl_easy_perform(c);
	if (rc == CURLE_OK) {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &res->http_status);
		if (!res->body) {
			res->body = strdup("");
			if (!res->body) {
				curl_easy_cleanup(c);
				return -ENOMEM;
			}
		}
		curl_easy_cleanup(c);
		return 0;
	}
	/* Prefer the system's words for a socket error: "Connection refused". */
	curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &os_errno);
	if (rc == CURLE_COULDNT_CONNECT && os_errno)
		snprintf(res->err, sizeof(res->err), "%s", strerror((int)os_errno));
	else if (rc == CURLE_OPERATION_TIMEDOUT)
		snprintf(res->err, sizeof(res->err), "no answer within %ld ms", timeout_ms);
	else if (rc == CURLE_WRITE_ERROR && res->too_large)
		snprintf(res->err, sizeof(res->err), "response larger than %u MiB", FETCH_MAX_BODY >> 20);
	else
		snprintf(res->err, sizeof(res->err), "%s", curl_err[0] ? curl_err : curl_easy_strerror(rc));
	curl_easy_cleanup(c);
	fetch_result_free(res);
	return rc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EIO;
}

void fetch_result_free(struct fetch_result *res)
{
	free(res->body);
	res->body = NULL;
	res->len = 0;
}
