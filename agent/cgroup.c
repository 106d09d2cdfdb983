// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "cgroup.h"

int cgroup2_root(char *buf, size_t len)
{
	char dev[256], dir[4096], type[64];
	int err = -ENOENT;
	FILE *f;

	f = fopen("/proc/mounts", "re");
	if (!f)
		return -errno;
	while (fscanf(f, "%255s %4095s %63s %*s %*d %*d\n", dev, dir, type) == 3) {
		if (strcmp(type, "cgroup2"))
			continue;
		if (strlen(dir) >= len) {
			err = -ENAMETOOLONG;
			break;
		}
		strcpy(buf, dir);
		err = 0;
		break;
	}
	fclose(f);
	return err;
}

/* dfd (at rel, depth levels left): its children, and theirs. Unreadable ones are skipped. */
static void walk_below(int dfd, char *rel, size_t rel_len, uint32_t depth, cgroup_fn fn, void *ctx)
{
	struct dirent *de;
	struct stat st;
	DIR *d;

	d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return;
	}
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		int cfd;

		if (de->d_type != DT_DIR || de->d_name[0] == '.' || rel_len + n + 2 > PATH_MAX)
			continue;
		cfd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (cfd < 0)
			continue;
		if (fstat(cfd, &st)) {
			close(cfd);
			continue;
		}
		snprintf(rel + rel_len, PATH_MAX - rel_len, "%s%s", rel_len ? "/" : "", de->d_name);
		/* A cgroup's id is its directory's inode number (kernfs, 64-bit). */
		fn(ctx, st.st_ino, rel);
		if (depth > 1)
			walk_below(cfd, rel, strlen(rel), depth - 1, fn, ctx);
		else
			close(cfd);
		rel[rel_len] = '\0';
	}
	closedir(d);
}

int cgroup_walk(const char *dir, uint32_t depth, cgroup_fn fn, void *ctx)
{
	char rel[PATH_MAX] = "";
	struct stat st;
	int fd;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st)) {
		close(fd);
		return -errno;
	}
	fn(ctx, st.st_ino, "");
	if (depth)
		walk_below(fd, rel, 0, depth, fn, ctx);
	else
		close(fd);
	return 0;
}
