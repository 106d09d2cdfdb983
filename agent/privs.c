// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <linux/capability.h>
#include "log.h"
#include "privs.h"

/* The raw syscalls: no libcap dependency for two calls. */
static int caps_get(struct __user_cap_data_struct data[2])
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };

	return syscall(SYS_capget, &hdr, data) ? -errno : 0;
}

static int caps_set(struct __user_cap_data_struct data[2])
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };

	return syscall(SYS_capset, &hdr, data) ? -errno : 0;
}

static int set_sets(uint64_t keep, int permitted_too)
{
	struct __user_cap_data_struct data[2];
	int err = caps_get(data);

	if (err)
		return err;
	for (int i = 0; i < 2; i++) {
		uint32_t k = (uint32_t)(keep >> (32 * i));

		data[i].effective = k & data[i].permitted;
		if (permitted_too)
			data[i].permitted &= k;
		data[i].inheritable = 0;
	}
	return caps_set(data);
}

int privs_lower(uint64_t keep)
{
	return set_sets(keep, 0);
}

int privs_limit(uint64_t keep)
{
	return set_sets(keep, 1);
}

int privs_become(const char *user, int keep_caps)
{
	struct passwd *pw;

	errno = 0;
	pw = getpwnam(user);
	if (!pw) {
		log_err("user %s: %s", user, errno ? strerror(errno) : "no such user");
		return errno ? -errno : -ENOENT;
	}
	if (keep_caps && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0)) {
		log_err("user %s: keep capabilities: %s", user, strerror(errno));
		return -errno;
	}
	/* glibc applies setgid/setuid to every thread; none runs yet anyway. */
	if (setgroups(0, NULL) || setgid(pw->pw_gid) || setuid(pw->pw_uid)) {
		log_err("user %s: switch to uid %u: %s", user, (unsigned)pw->pw_uid, strerror(errno));
		return -errno;
	}
	return 0;
}
