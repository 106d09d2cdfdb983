/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The test and benchmark tools' one way to turn an address argument into a
 * socket address: an IPv4 or IPv6 literal (an IPv6 one, ::ffff:a.b.c.d
 * included, gives an AF_INET6 address) and a port.
 */
#ifndef KB_TOOLS_SOCKADDR_H
#define KB_TOOLS_SOCKADDR_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* Fill *ss; returns its length, or 0 when host is not an IP literal. */
static inline socklen_t tool_sockaddr(const char *host, const char *port, struct sockaddr_storage *ss)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons(atoi(port));
		return sizeof(*in4);
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(atoi(port));
		return sizeof(*in6);
	}
	return 0;
}

/* The same from a command line: a bad address ends the program (status 2). */
static inline socklen_t tool_sockaddr_arg(const char *prog, const char *host, const char *port,
					  struct sockaddr_storage *ss)
{
	socklen_t sl = tool_sockaddr(host, port, ss);

	if (!sl) {
		fprintf(stderr, "%s: bad address %s\n", prog, host);
		exit(2);
	}
	return sl;
}

#endif /* KB_TOOLS_SOCKADDR_H */
