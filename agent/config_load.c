// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * config_load(): the configuration's edge with the file system. It reads
 * the file and finds each netns: file's inode; everything between is
 * config_parse(), which touches nothing but memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include "config.h"
#include "yamlwalk.h"

/*
 * Read a whole file of at most max_bytes into a malloc'd *buf. Returns 0,
 * -EFBIG when it is larger, or -errno; err says why, naming path.
 */
static int read_file(const char *path, size_t max_bytes, char **bufp, size_t *lenp,
		     char *err, size_t errlen)
{
	char *buf = NULL;
	size_t len = 0;
	ssize_t n;
	int fd, ret = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		yamlwalk_pathf(err, errlen, path, ": %s", strerror(-ret));
		return ret;
	}
	/* One byte past the limit tells "too big" apart; read to EOF, st_size lies for pipes. */
	buf = malloc(max_bytes + 1);
	if (!buf)
		ret = -ENOMEM;
	while (!ret) {
		n = read(fd, buf + len, max_bytes + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = n ? -errno : 0;
			break;
		}
		len += n;
		if (len > max_bytes)
			ret = -EFBIG;
	}
	close(fd);
	if (ret == -EFBIG)
		yamlwalk_pathf(err, errlen, path, ": file is larger than %zu MiB", max_bytes >> 20);
	else if (ret)
		yamlwalk_pathf(err, errlen, path, ": %s", strerror(-ret));
	if (ret) {
		free(buf);
		return ret;
	}
	*bufp = buf;
	*lenp = len;
	return 0;
}

#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif

/*
 * A destination's netns: names a namespace file (/run/netns/NAME,
 * /proc/PID/ns/net); the kernel knows the namespace by that file's inode.
 * Found at load, so a namespace that is gone fails the start or the reload.
 */
static int find_netns(struct config *cfg, const char *path, char *err, size_t errlen)
{
	struct statfs sf;
	struct stat st;
	const char *why;

	for (size_t i = 0; i < cfg->n_dsts; i++) {
		struct config_dst *d = &cfg->dsts[i];

		if (!d->netns[0])
			continue;
		if (stat(d->netns, &st) || statfs(d->netns, &sf))
			why = errno != EACCES ? strerror(errno) :
			      "permission denied (another user's /proc/PID/ns/net needs CAP_SYS_PTRACE, "
			      "which kbreakerd does not keep after start: name the namespace with "
			      "`ip netns attach NAME PID` and give /run/netns/NAME)";
		else if (sf.f_type != NSFS_MAGIC)
			why = "not a namespace file (want /run/netns/NAME or /proc/PID/ns/net)";
		else {
			d->netns_ino = (uint32_t)st.st_ino;
			continue;
		}
		yamlwalk_pathf(err, errlen, path, ":%d:%d: destination \"%s\": netns: %s: %s",
			       d->netns_line, d->netns_col, d->name, d->netns, why);
		config_free(cfg);
		return -EINVAL;
	}
	return 0;
}

/* Two destinations the kernel could not tell apart, once their namespaces are known. */
static int check_netns_repeat(struct config *cfg, const char *path, char *err, size_t errlen)
{
	const struct config_dst *rep, *first = NULL;
	int ret = config_netns_repeat(cfg, &rep, &first);

	if (ret)
		yamlwalk_pathf(err, errlen, path, ": out of memory");
	else if (rep) {
		yamlwalk_pathf(err, errlen, path, ":%d:%d: destination \"%s\": netns: %s is the "
			       "namespace of destination \"%s\" (%s), with the same %s and port",
			       rep->netns_line, rep->netns_col, rep->name, rep->netns, first->name,
			       first->netns, rep->host_kind == HOST_NAME ? "host name" : "address");
		ret = -EINVAL;
	}
	if (ret)
		config_free(cfg);
	return ret;
}

int config_load(struct config *cfg, const char *path, char *err, size_t errlen)
{
	char *buf = NULL;
	size_t len = 0;
	int ret;

	config_init(cfg);
	if (errlen)
		err[0] = '\0';
	ret = read_file(path, CONFIG_MAX_FILE_BYTES, &buf, &len, err, errlen);
	if (!ret)
		ret = config_parse(cfg, path, buf, len, err, errlen);
	if (!ret)
		ret = find_netns(cfg, path, err, errlen);
	if (!ret)
		ret = check_netns_repeat(cfg, path, err, errlen);
	free(buf);
	return ret;
}

